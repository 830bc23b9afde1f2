from __future__ import annotations

import pytest

from projects.models import GroupMember, ProjectMember
from tests_support.factories import make_user

pytestmark = pytest.mark.django_db


def usernames(response):
    return [m["username"] for m in response.json()]


def test_direct_and_inherited_project_members(world, client_as):
    client = client_as(world["users"]["guest"])
    pid = world["project"].pk
    assert usernames(client.get(f"/api/v4/projects/{pid}/members")) == ["developer", "reporter", "guest"]
    everyone = client.get(f"/api/v4/projects/{pid}/members/all").json()
    levels = {m["username"]: m["access_level"] for m in everyone}
    assert levels == {"owner": 50, "maintainer": 40, "developer": 30, "reporter": 20, "guest": 10}
    member = client.get(f"/api/v4/projects/{pid}/members/{world['users']['developer'].pk}").json()
    assert (member["access_level"], member["membership_state"]) == (30, "active")
    response = client.get(f"/api/v4/projects/{pid}/members/{world['users']['owner'].pk}")
    assert response.status_code == 404 and response.json() == {"message": "404 Member Not Found"}


def test_members_all_keeps_the_highest_level_per_user(world, client_as):
    GroupMember.objects.create(group=world["acme"], user=world["users"]["developer"], access_level=20)
    everyone = client_as(world["users"]["owner"]).get(f"/api/v4/projects/{world['project'].pk}/members/all").json()
    assert [m["access_level"] for m in everyone if m["username"] == "developer"] == [30]


def test_group_members_and_all(world, client_as):
    client = client_as(world["users"]["maintainer"])
    assert usernames(client.get("/api/v4/groups/acme%2Fplatform/members")) == ["owner", "maintainer"]
    assert usernames(client.get("/api/v4/groups/acme%2Fplatform/members/all", {"query": "own"})) == ["owner"]


def test_maintainer_adds_updates_and_removes_a_project_member(world, client_as):
    newbie = make_user("newbie")
    client = client_as(world["users"]["maintainer"])
    url = f"/api/v4/projects/{world['project'].pk}/members"
    response = client.post(url, {"user_id": newbie.pk, "access_level": 30, "expires_at": "2099-01-01"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["access_level"], response.json()["expires_at"]) == (30, "2099-01-01")
    assert response.json()["created_by"]["username"] == "maintainer"
    again = client.post(url, {"username": "NEWBIE", "access_level": 20}, format="json")
    assert again.status_code == 409 and again.json() == {"message": "Member already exists"}
    response = client.put(f"{url}/{newbie.pk}", {"access_level": 40}, format="json")
    assert response.status_code == 200 and response.json()["access_level"] == 40
    assert client.delete(f"{url}/{newbie.pk}").status_code == 204
    assert not ProjectMember.objects.filter(user=newbie).exists()
    assert client.delete(f"{url}/{newbie.pk}").status_code == 404


@pytest.mark.parametrize(
    ("data", "status", "body"),
    [
        ({"user_id": "abc", "access_level": 30}, 400, {"error": "user_id is invalid"}),
        ({"user_id": "NEW"}, 400, {"error": "access_level is missing"}),
        ({"user_id": "NEW", "access_level": 35}, 400, {"error": "access_level does not have a valid value"}),
        ({"user_id": "NEW", "access_level": "high"}, 400, {"error": "access_level is invalid"}),
        ({"access_level": 30}, 400, None),
        ({"user_id": 987654, "access_level": 30}, 404, {"message": "404 User Not Found"}),
        ({"user_id": "NEW", "access_level": 30, "expires_at": "2001-01-01"}, 400, None),
        ({"user_id": "NEW", "access_level": 50}, 403, {"message": "403 Forbidden"}),
    ],
)
def test_bad_member_requests_add_nobody(world, client_as, data, status, body):
    newbie = make_user("newbie")
    data = {key: (newbie.pk if value == "NEW" else value) for key, value in data.items()}
    response = client_as(world["users"]["maintainer"]).post(
        f"/api/v4/projects/{world['project'].pk}/members", data, format="json"
    )
    assert response.status_code == status, response.content
    if body is not None:
        assert response.json() == body
    assert not ProjectMember.objects.filter(user=newbie).exists()


def test_level_below_an_inherited_one_is_refused(world, client_as):
    response = client_as(world["users"]["owner"]).post(
        f"/api/v4/projects/{world['project'].pk}/members",
        {"user_id": world["users"]["maintainer"].pk, "access_level": 20},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["message"]["access_level"][0].startswith("should be greater than or equal to Maintainer")


def test_developer_and_outsider_cannot_manage_members(world, client_as):
    newbie = make_user("newbie")
    url = f"/api/v4/projects/{world['project'].pk}/members"
    data = {"user_id": newbie.pk, "access_level": 10}
    assert client_as(world["users"]["developer"]).post(url, data, format="json").status_code == 403
    assert client_as(world["users"]["outsider"]).post(url, data, format="json").status_code == 404
    guest_id = world["users"]["guest"].pk
    assert client_as(world["users"]["developer"]).delete(f"{url}/{guest_id}").status_code == 403


def test_a_member_may_leave(world, client_as):
    guest = world["users"]["guest"]
    response = client_as(guest).delete(f"/api/v4/projects/{world['project'].pk}/members/{guest.pk}")
    assert response.status_code == 204


def test_only_owners_manage_group_members_and_the_last_owner_stays(world, client_as):
    acme = world["acme"]
    owner = world["users"]["owner"]
    newbie = make_user("newbie")
    url = f"/api/v4/groups/{acme.pk}/members"
    assert (
        client_as(world["users"]["maintainer"])
        .post(
            f"/api/v4/groups/{world['platform'].pk}/members", {"user_id": newbie.pk, "access_level": 10}, format="json"
        )
        .status_code
        == 403
    )
    client = client_as(owner)
    response = client.delete(f"{url}/{owner.pk}")
    assert response.status_code == 400 and response.json() == {"message": "A group must have at least one owner"}
    assert client.put(f"{url}/{owner.pk}", {"access_level": 40}, format="json").status_code == 400
    assert client.post(url, {"user_id": newbie.pk, "access_level": 50}, format="json").status_code == 201
    assert client.delete(f"{url}/{owner.pk}").status_code == 204
    assert list(GroupMember.objects.filter(group=acme).values_list("user__username", flat=True)) == ["newbie"]


def test_subgroup_owner_may_leave_when_a_parent_owner_remains(world, client_as):
    platform = world["platform"]
    owner = world["users"]["owner"]
    response = client_as(owner).delete(f"/api/v4/groups/{platform.pk}/members/{owner.pk}")
    assert response.status_code == 204


def test_all_members_come_a_page_at_a_time_ordered_by_user_id(world, client_as):
    project = world["project"]
    for n in range(30):
        ProjectMember.objects.create(project=project, user=make_user(f"crowd{n}"), access_level=20)
    client = client_as(world["users"]["owner"])
    url = f"/api/v4/projects/{project.pk}/members/all"
    first = client.get(url, {"per_page": 10})
    assert first.status_code == 200
    # 30 new members, the three direct ones of the world, and owner and maintainer from groups.
    assert first["X-Total"] == "35" and first["X-Total-Pages"] == "4"
    seen = []
    for page in range(1, 5):
        seen += [row["id"] for row in client.get(url, {"per_page": 10, "page": page}).json()]
    assert seen == sorted(seen) and len(set(seen)) == 35


def test_a_list_parameter_with_too_many_values_is_refused(world, client_as):
    response = client_as(world["users"]["owner"]).get(
        "/api/v4/groups", {"skip_groups": ",".join(str(n) for n in range(1, 1_002))}
    )
    assert response.status_code == 400
    assert "skip_groups" in str(response.json())
