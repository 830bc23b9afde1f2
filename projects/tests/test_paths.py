"""One path rule for groups and projects: the API and the admin refuse the same paths.

The admin's group form used to accept ``a/b``, ``..``, ``x y`` and a path equal to a
sibling project's, which the API refuses.
"""

from __future__ import annotations

import pytest

from projects.models import Namespace, Project
from projects.paths import PATH_PROBLEM, TAKEN, path_problems

# (path, problem) under acme/platform, which holds the project ``svc``.
BAD_PATHS = [
    ("a/b", PATH_PROBLEM),
    ("..", PATH_PROBLEM),
    ("x y", PATH_PROBLEM),
    ("-lead", PATH_PROBLEM),
    ("trail.", PATH_PROBLEM),
    ("name.git", PATH_PROBLEM),
    ("feed.atom", PATH_PROBLEM),
    ("caf\u00e9", PATH_PROBLEM),
    ("a" * 256, PATH_PROBLEM),
    ("svc", TAKEN),
    ("SVC", TAKEN),
]


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def _group_form(path: str, parent: Namespace) -> dict:
    return {
        "name": "New",
        "path": path,
        "parent": str(parent.pk),
        "description": "",
        "visibility": "0",
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
    }


def _project_form(path: str, namespace: Namespace) -> dict:
    return {
        "namespace": str(namespace.pk),
        "name": "New",
        "path": path,
        "description": "",
        "visibility": "0",
        "container_registry_access_level": "enabled",
        "members-TOTAL_FORMS": "0",
        "members-INITIAL_FORMS": "0",
    }


@pytest.mark.parametrize(("path", "problem"), BAD_PATHS)
def test_the_rule_names_the_problem(world, path, problem):
    assert path_problems(path, parent=world["platform"]) == [problem]


@pytest.mark.parametrize(("path", "problem"), BAD_PATHS)
def test_api_refuses_the_group_path(world, client_as, path, problem):
    response = client_as(world["users"]["owner"]).post(
        "/api/v4/groups", {"name": "New", "path": path, "parent_id": world["platform"].pk}, format="json"
    )
    assert response.status_code == 400
    if len(path) <= 255:
        assert response.json() == {"message": f'Failed to save group {{:path=>["{problem}"]}}'}
    assert not Namespace.objects.filter(name="New").exists()


@pytest.mark.parametrize(("path", "problem"), BAD_PATHS)
def test_admin_refuses_the_group_path(world, admin_client, path, problem):
    response = admin_client.post("/admin/projects/group/add/", _group_form(path, world["platform"]))
    assert response.status_code == 200  # the form again, with the error
    if len(path) <= 255:  # longer ones are stopped by the field's own length check
        assert problem.replace("'", "&#x27;") in response.content.decode()
    assert not Namespace.objects.filter(name="New").exists()


@pytest.mark.parametrize(("path", "problem"), BAD_PATHS)
def test_api_refuses_the_project_path(world, client_as, path, problem):
    response = client_as(world["users"]["owner"]).post(
        "/api/v4/projects", {"name": "New", "path": path, "namespace_id": world["platform"].pk}, format="json"
    )
    assert response.status_code == 400
    if len(path) <= 255:
        assert response.json()["message"]["path"] == [problem]
    assert not Project.objects.filter(name="New").exists()


@pytest.mark.parametrize(("path", "problem"), BAD_PATHS)
def test_admin_refuses_the_project_path(world, admin_client, path, problem):
    response = admin_client.post("/admin/projects/project/add/", _project_form(path, world["platform"]))
    assert response.status_code == 200
    if len(path) <= 255:
        assert problem.replace("'", "&#x27;") in response.content.decode()
    assert not Project.objects.filter(name="New").exists()


def test_a_group_path_equal_to_a_sibling_groups_is_taken_in_both(world, admin_client, client_as):
    owner = world["users"]["owner"]
    data = {"name": "New", "path": "platform", "parent_id": world["acme"].pk}
    response = client_as(owner).post("/api/v4/groups", data)
    assert response.json() == {"message": f'Failed to save group {{:path=>["{TAKEN}"]}}'}
    response = admin_client.post("/admin/projects/group/add/", _group_form("Platform", world["acme"]))
    assert TAKEN in response.content.decode()


def test_a_good_path_is_accepted_by_both(world, admin_client, client_as):
    response = admin_client.post("/admin/projects/group/add/", _group_form("from-admin", world["platform"]))
    assert response.status_code == 302
    assert Namespace.objects.get(full_path="acme/platform/from-admin").name == "New"
    response = admin_client.post("/admin/projects/project/add/", _project_form("admin.app", world["platform"]))
    assert response.status_code == 302
    assert Project.objects.filter(full_path="acme/platform/admin.app").exists()
    response = client_as(world["users"]["owner"]).post(
        "/api/v4/groups", {"name": "Api", "path": "from_api", "parent_id": world["platform"].pk}
    )
    assert response.status_code == 201
