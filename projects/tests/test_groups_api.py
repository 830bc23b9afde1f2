from __future__ import annotations

import pytest

from projects.models import GroupMember, Namespace
from tests_support.factories import make_group, make_user

pytestmark = pytest.mark.django_db


def test_user_creates_a_group_and_becomes_its_owner(client_as):
    alice = make_user("alice")
    response = client_as(alice).post("/api/v4/groups", {"name": "Team", "path": "team"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["full_path"], body["visibility"], body["parent_id"]) == ("team", "private", None)
    assert body["web_url"] == "http://testserver/groups/team"
    assert GroupMember.objects.get(group_id=body["id"]).user == alice


def test_maintainer_creates_a_subgroup_by_parent_id(world, client_as):
    platform = world["platform"]
    response = client_as(world["users"]["maintainer"]).post(
        "/api/v4/groups", {"name": "Tools", "path": "tools", "parent_id": platform.pk}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["full_path"], response.json()["full_name"]) == (
        "acme/platform/tools",
        "Acme / Platform / Tools",
    )


def test_developer_cannot_create_a_subgroup_and_outsiders_do_not_see_the_parent(world, client_as):
    data = {"name": "Tools", "path": "tools", "parent_id": world["platform"].pk}
    make_user("dev2")
    GroupMember.objects.create(group=world["platform"], user=world["users"]["developer"], access_level=30)
    assert client_as(world["users"]["developer"]).post("/api/v4/groups", data, format="json").status_code == 403
    response = client_as(world["users"]["outsider"]).post("/api/v4/groups", data, format="json")
    assert response.status_code == 404 and response.json() == {"message": "404 Group Not Found"}


def test_user_without_can_create_group_is_refused():
    user = make_user("limited", can_create_group=False)
    from rest_framework.test import APIClient

    from tests_support.factories import make_token

    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(user))
    assert client.post("/api/v4/groups", {"name": "x", "path": "x"}, format="json").status_code == 403


@pytest.mark.parametrize(
    ("data", "status", "body"),
    [
        ({}, 400, {"error": "name is missing, path is missing"}),
        ({"name": "A", "path": "acme"}, 400, None),
        ({"name": "A", "path": "ACME"}, 400, None),
        ({"name": "A", "path": "owner"}, 400, None),
        ({"name": "A", "path": "bad path"}, 400, None),
        ({"name": "A", "path": "a" * 256}, 400, {"error": "path is invalid"}),
        (
            {"name": "A", "path": "new", "visibility": "secret"},
            400,
            {"error": "visibility does not have a valid value"},
        ),
        ({"name": "A", "path": "new", "parent_id": "x"}, 400, {"error": "parent_id is invalid"}),
        ({"name": "A", "path": "new", "parent_id": 10**30}, 400, None),
        ({"name": "A", "path": "new", "parent_id": 987654}, 404, {"message": "404 Group Not Found"}),
    ],
)
def test_bad_group_requests_create_nothing(world, client_as, data, status, body):
    before = Namespace.objects.count()
    response = client_as(world["users"]["owner"]).post("/api/v4/groups", data, format="json")
    assert response.status_code == status, response.content
    if body is not None:
        assert response.json() == body
    if status == 400 and "path" in data and "visibility" not in data and body is None and "parent_id" not in data:
        assert response.json()["message"].startswith("Failed to save group")
    assert Namespace.objects.count() == before


def test_subgroup_may_not_be_more_visible_than_its_parent(world, client_as):
    response = client_as(world["users"]["owner"]).post(
        "/api/v4/groups",
        {"name": "P", "path": "p", "parent_id": world["acme"].pk, "visibility": "public"},
        format="json",
    )
    assert response.status_code == 400
    assert "visibility_level" in response.json()["message"]


def test_get_group_by_encoded_path_and_404_when_invisible(world, client_as):
    owner = client_as(world["users"]["owner"])
    response = owner.get("/api/v4/groups/acme%2Fplatform")
    assert response.status_code == 200 and response.json()["id"] == world["platform"].pk
    assert owner.get("/api/v4/groups/ACME").json()["id"] == world["acme"].pk
    for client in (client_as(world["users"]["outsider"]), client_as(None)):
        response = client.get(f"/api/v4/groups/{world['acme'].pk}")
        assert response.status_code == 404 and response.json() == {"message": "404 Group Not Found"}


def test_project_member_sees_the_ancestor_groups(world, client_as):
    response = client_as(world["users"]["guest"]).get("/api/v4/groups")
    assert [g["full_path"] for g in response.json()] == ["acme", "acme/platform"]


def test_groups_list_for_anonymous_is_public_only(world, client_as):
    make_group("open", visibility="public")
    response = client_as(None).get("/api/v4/groups")
    assert [g["path"] for g in response.json()] == ["open"]
    assert response["X-Total"] == "1"


def test_groups_list_filters(world, client_as):
    make_group("zeta", visibility="internal")
    client = client_as(world["users"]["maintainer"])
    assert [g["path"] for g in client.get("/api/v4/groups").json()] == ["acme", "platform", "zeta"]
    assert [g["path"] for g in client.get("/api/v4/groups", {"top_level_only": "true"}).json()] == ["acme", "zeta"]
    assert [g["path"] for g in client.get("/api/v4/groups", {"search": "plat"}).json()] == ["platform"]
    assert [g["path"] for g in client.get("/api/v4/groups", {"min_access_level": 40}).json()] == ["platform"]
    assert [g["path"] for g in client.get("/api/v4/groups", {"sort": "desc"}).json()] == ["zeta", "platform", "acme"]
    skip = client.get("/api/v4/groups", {"skip_groups[]": [world["acme"].pk]}).json()
    assert [g["path"] for g in skip] == ["platform", "zeta"]
    assert client.get("/api/v4/groups", {"min_access_level": 33}).status_code == 400
    assert client.get("/api/v4/groups", {"order_by": "size"}).status_code == 400


def test_subgroups_lists_direct_children(world, client_as):
    response = client_as(world["users"]["owner"]).get("/api/v4/groups/acme/subgroups")
    assert [g["full_path"] for g in response.json()] == ["acme/platform"]
