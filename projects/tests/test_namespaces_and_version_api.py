"""``/namespaces``, ``/version``, ``/metadata``, a group's projects and descendant groups,
and one error shape for a path that names no project."""

from __future__ import annotations

import pytest

from tests_support.factories import make_group, make_project

pytestmark = pytest.mark.django_db


def test_version_and_metadata_report_this_service(world, client_as, settings):
    settings.APP_REVISION = "abc1234"
    client = client_as(world["users"]["reporter"], ["read_user"])
    version = client.get("/api/v4/version")
    assert version.status_code == 200 and version.json() == {"version": "0.1.0", "revision": "abc1234"}
    metadata = client.get("/api/v4/metadata").json()
    assert metadata["version"] == "0.1.0" and metadata["enterprise"] is False
    assert metadata["kas"]["enabled"] is False
    assert client_as(None).get("/api/v4/version").status_code == 401


def test_namespaces_lists_the_callers_own_and_finds_by_id_or_path(world, client_as):
    reporter = world["users"]["reporter"]
    client = client_as(world["users"]["maintainer"])
    listed = client.get("/api/v4/namespaces").json()
    # The personal namespace and the group (with its descendants) the maintainer is in.
    assert [n["full_path"] for n in listed] == ["acme/platform", "maintainer"]
    platform = next(n for n in listed if n["kind"] == "group")
    assert platform == {
        "id": world["platform"].pk,
        "name": "Platform",
        "path": "platform",
        "kind": "group",
        "full_path": "acme/platform",
        "parent_id": world["acme"].pk,
        "avatar_url": None,
        "web_url": "http://testserver/groups/acme/platform",
    }
    assert [n["full_path"] for n in client.get("/api/v4/namespaces", {"search": "plat"}).json()] == ["acme/platform"]
    assert client.get("/api/v4/namespaces/acme%2Fplatform").json()["id"] == world["platform"].pk
    assert client.get(f"/api/v4/namespaces/{world['platform'].pk}").json()["full_path"] == "acme/platform"
    assert client.get("/api/v4/namespaces/maintainer").json()["kind"] == "user"
    # Another user's personal namespace and an invisible group are not found.
    for raw in (reporter.username, "nope", str(make_group("hidden").pk)):
        response = client.get(f"/api/v4/namespaces/{raw}")
        assert response.status_code == 404 and response.json() == {"message": "404 Namespace Not Found"}
    assert client_as(None).get("/api/v4/namespaces").status_code == 401


def test_admins_list_every_namespace(world, client_as, admin):
    paths = [n["full_path"] for n in client_as(admin).get("/api/v4/namespaces", {"per_page": 100}).json()]
    assert {"acme", "acme/platform", "owner", "root"} <= set(paths)


def test_group_projects_with_and_without_subgroups(world, client_as):
    make_project(world["acme"], "top", creator=world["users"]["owner"])
    client = client_as(world["users"]["owner"])
    direct = client.get(f"/api/v4/groups/{world['acme'].pk}/projects").json()
    assert [p["path_with_namespace"] for p in direct] == ["acme/top"]
    every = client.get("/api/v4/groups/acme/projects", {"include_subgroups": "true", "order_by": "path", "sort": "asc"})
    assert [p["path_with_namespace"] for p in every.json()] == ["acme/platform/svc", "acme/top"]
    # The reporter sees only what it may: its own project, not the group's other one.
    seen = client_as(world["users"]["reporter"]).get("/api/v4/groups/acme/projects", {"include_subgroups": True})
    assert [p["path_with_namespace"] for p in seen.json()] == ["acme/platform/svc"]


def test_descendant_groups_go_all_the_way_down(world, client_as):
    deep = make_group("deep", parent=world["platform"])
    client = client_as(world["users"]["owner"])
    listed = client.get("/api/v4/groups/acme/descendant_groups").json()
    assert sorted(g["full_path"] for g in listed) == ["acme/platform", deep.full_path]
    assert [g["full_path"] for g in client.get("/api/v4/groups/acme/subgroups").json()] == ["acme/platform"]


@pytest.mark.parametrize(
    "path",
    [
        "projects/acme%2Fnope",
        "projects/acme%2Fnope%2Fdeeper",
        "projects/acme%2Fnope/registry/repositories",
        "projects/acme%2Fnope/deploy_tokens",
        "projects/acme%2Fnope/members/all",
    ],
)
def test_an_encoded_path_that_names_no_project_is_404_project_not_found(world, client_as, path):
    response = client_as(world["users"]["owner"]).get(f"/api/v4/{path}")
    assert response.status_code == 404 and response.json() == {"message": "404 Project Not Found"}
