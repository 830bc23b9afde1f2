from __future__ import annotations

import pytest

from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from projects.models import Project, ProjectMember
from projects.signals import project_deletion_requested
from tests_support.factories import make_group, make_project, make_user

pytestmark = pytest.mark.django_db


def test_create_in_a_group_with_registry_and_policy_attributes(world, client_as):
    response = client_as(world["users"]["owner"]).post(
        "/api/v4/projects",
        {
            "name": "Api",
            "namespace_id": world["platform"].pk,
            "container_registry_access_level": "private",
            "container_expiration_policy_attributes": {
                "enabled": True,
                "cadence": "7d",
                "keep_n": 5,
                "name_regex": "v.+",
                "older_than": "14d",
            },
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["path"], body["path_with_namespace"]) == ("api", "acme/platform/api")
    assert body["name_with_namespace"] == "Acme / Platform / Api"
    assert body["container_registry_access_level"] == "private" and body["container_registry_enabled"] is True
    assert body["container_registry_image_prefix"].endswith("/acme/platform/api")
    policy = body["container_expiration_policy"]
    assert (policy["enabled"], policy["cadence"], policy["keep_n"], policy["older_than"]) == (True, "7d", 5, "14d")
    assert body["namespace"]["kind"] == "group" and body["namespace"]["full_path"] == "acme/platform"
    assert body["web_url"] == "http://testserver/acme/platform/api"


def test_create_in_the_personal_namespace_by_default(client_as):
    alice = make_user("alice")
    response = client_as(alice).post(
        "/api/v4/projects", {"path": "tool", "container_registry_enabled": False}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["path_with_namespace"], body["namespace"]["kind"]) == ("alice/tool", "user")
    assert body["container_registry_access_level"] == "disabled" and body["container_registry_enabled"] is False
    assert body["container_expiration_policy"]["enabled"] is False
    assert ProjectMember.objects.get(project_id=body["id"]).user == alice


def test_namespace_given_by_full_path(world, client_as):
    response = client_as(world["users"]["owner"]).post(
        "/api/v4/projects", {"name": "By Path", "namespace_id": "acme/platform"}, format="json"
    )
    assert response.status_code == 201 and response.json()["path"] == "by-path"


@pytest.mark.parametrize(
    ("data", "body"),
    [
        ({}, {"error": "name, path are missing, at least one parameter must be provided"}),
        ({"path": "svc"}, {"message": {"path": ["has already been taken"], "name": ["has already been taken"]}}),
        ({"path": "SVC", "name": "other"}, {"message": {"path": ["has already been taken"]}}),
        ({"path": "new", "visibility": "secret"}, {"error": "visibility does not have a valid value"}),
        (
            {"path": "new", "container_registry_access_level": "on"},
            {"error": "container_registry_access_level does not have a valid value"},
        ),
        ({"path": "new", "visibility": "public"}, None),
        ({"path": "new", "namespace_id": 987654}, {"message": {"namespace": ["is not valid"]}}),
        ({"path": "bad/path"}, None),
        ({"path": "x" * 256}, {"error": "path is invalid"}),
        (
            {"path": "new", "container_expiration_policy_attributes": "weekly"},
            {"error": "container_expiration_policy_attributes is invalid"},
        ),
        (
            {"path": "new", "container_expiration_policy_attributes": {"cadence": "2d"}},
            {"message": {"container_expiration_policy.cadence": ["is not included in the list"]}},
        ),
        (
            {"path": "new", "container_expiration_policy_attributes": {"enabled": "maybe"}},
            {"error": "container_expiration_policy_attributes[enabled] is invalid"},
        ),
    ],
)
def test_bad_project_requests_create_nothing(world, client_as, data, body):
    data = {"namespace_id": world["platform"].pk, **data}
    before = (Project.objects.count(), ContainerExpirationPolicy.objects.count())
    response = client_as(world["users"]["owner"]).post("/api/v4/projects", data, format="json")
    assert response.status_code == 400, response.content
    if body is not None:
        assert response.json() == body
    assert (Project.objects.count(), ContainerExpirationPolicy.objects.count()) == before


def test_reporter_cannot_create_in_the_group(world, client_as):
    response = client_as(world["users"]["outsider"]).post(
        "/api/v4/projects", {"path": "x", "namespace_id": world["platform"].pk}, format="json"
    )
    assert response.status_code == 400 and response.json() == {"message": {"namespace": ["is not valid"]}}


def test_get_by_id_and_by_encoded_path(world, client_as):
    project = world["project"]
    client = client_as(world["users"]["reporter"])
    assert client.get(f"/api/v4/projects/{project.pk}").json()["id"] == project.pk
    assert client.get("/api/v4/projects/acme%2Fplatform%2Fsvc").json()["id"] == project.pk
    assert client.get("/api/v4/projects/ACME%2Fplatform%2Fsvc").json()["id"] == project.pk


def test_private_project_is_404_for_outsiders_and_anonymous(world, client_as):
    for client in (client_as(world["users"]["outsider"]), client_as(None)):
        response = client.get(f"/api/v4/projects/{world['project'].pk}")
        assert response.status_code == 404 and response.json() == {"message": "404 Project Not Found"}


def test_list_is_scoped_and_filtered(world, client_as):
    open_group = make_group("open", visibility="public")
    make_project(open_group, "pub", visibility="public")
    anonymous = client_as(None).get("/api/v4/projects")
    assert [p["path"] for p in anonymous.json()] == ["pub"]
    developer = client_as(world["users"]["developer"])
    assert {p["path"] for p in developer.get("/api/v4/projects").json()} == {"svc", "pub"}
    assert [p["path"] for p in developer.get("/api/v4/projects", {"membership": "true"}).json()] == ["svc"]
    assert [p["path"] for p in developer.get("/api/v4/projects", {"visibility": "public"}).json()] == ["pub"]
    assert [p["path"] for p in developer.get("/api/v4/projects", {"search": "SV"}).json()] == ["svc"]
    assert developer.get("/api/v4/projects", {"min_access_level": 40}).json() == []
    simple = developer.get("/api/v4/projects", {"simple": "true", "search": "svc"}).json()[0]
    assert "container_expiration_policy" not in simple and simple["path_with_namespace"] == "acme/platform/svc"
    assert developer.get("/api/v4/projects", {"order_by": "stars"}).status_code == 400


def test_owner_edits_registry_access_and_policy(world, client_as):
    project = world["project"]
    before = ContainerExpirationPolicy.objects.get(project=project).next_run_at
    response = client_as(world["users"]["maintainer"]).put(
        f"/api/v4/projects/{project.pk}",
        {
            "container_registry_access_level": "private",
            "container_expiration_policy_attributes": {"cadence": "14d", "enabled": True, "name_regex_delete": "v.*"},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    policy = response.json()["container_expiration_policy"]
    assert (policy["cadence"], policy["enabled"], policy["name_regex"]) == ("14d", True, "v.*")
    assert policy["next_run_at"] > before.isoformat()[:19]
    assert response.json()["container_registry_access_level"] == "private"


def test_policy_edit_is_atomic(world, client_as):
    project = world["project"]
    response = client_as(world["users"]["owner"]).put(
        f"/api/v4/projects/{project.pk}",
        {"description": "changed", "container_expiration_policy_attributes": {"keep_n": 3}},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {"message": {"container_expiration_policy.keep_n": ["is not included in the list"]}}
    project.refresh_from_db()
    assert project.description is None


def test_maintainer_may_not_rename_but_owner_may(world, client_as):
    project = world["project"]
    assert (
        client_as(world["users"]["maintainer"])
        .put(f"/api/v4/projects/{project.pk}", {"name": "renamed"}, format="json")
        .status_code
        == 403
    )
    assert (
        client_as(world["users"]["developer"])
        .put(f"/api/v4/projects/{project.pk}", {"description": "x"}, format="json")
        .status_code
        == 403
    )
    response = client_as(world["users"]["owner"]).put(
        f"/api/v4/projects/{project.pk}", {"path": "svc2", "name": "Service"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert (response.json()["path_with_namespace"], response.json()["name"]) == ("acme/platform/svc2", "Service")
    assert client_as(world["users"]["owner"]).get("/api/v4/projects/acme%2Fplatform%2Fsvc2").status_code == 200


def test_project_with_images_cannot_change_path(world, client_as):
    project = world["project"]
    ContainerRepository.objects.create(project=project, name="")
    response = client_as(world["users"]["owner"]).put(
        f"/api/v4/projects/{project.pk}", {"path": "moved"}, format="json"
    )
    assert response.status_code == 400
    project.refresh_from_db()
    assert project.path == "svc"


def test_edit_needs_one_known_attribute(world, client_as):
    response = client_as(world["users"]["owner"]).put(
        f"/api/v4/projects/{world['project'].pk}", {"stars": 3}, format="json"
    )
    assert response.status_code == 400 and "at least one parameter must be provided" in response.json()["error"]


def test_delete_without_images_removes_the_row(world, client_as):
    project = world["project"]
    seen = []
    project_deletion_requested.connect(
        lambda sender, project, **kw: seen.append(project.pk), weak=False, dispatch_uid="t1"
    )
    try:
        assert client_as(world["users"]["maintainer"]).delete(f"/api/v4/projects/{project.pk}").status_code == 403
        response = client_as(world["users"]["owner"]).delete(f"/api/v4/projects/{project.pk}")
    finally:
        project_deletion_requested.disconnect(dispatch_uid="t1")
    assert response.status_code == 202 and response.json() == {"message": "202 Accepted"}
    assert seen == [project.pk]
    assert not Project.objects.filter(pk=project.pk).exists()


def test_delete_with_images_hides_the_project_until_they_are_gone(world, client_as):
    project = world["project"]
    ContainerRepository.objects.create(project=project, name="")
    owner = client_as(world["users"]["owner"])
    assert owner.delete("/api/v4/projects/acme%2Fplatform%2Fsvc").status_code == 202
    project.refresh_from_db()
    assert project.pending_delete is True
    assert owner.get(f"/api/v4/projects/{project.pk}").status_code == 404
    assert owner.get("/api/v4/projects").json() == []
