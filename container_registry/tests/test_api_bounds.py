"""A registry API request's work is bounded by the request, not by the data behind it.

The group listing used to check every project of the group and its subgroups one by one
(a query each); tag names that cannot exist in the registry were put in registry URLs.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from container_registry.models import ContainerRepository
from projects import permissions
from projects.models import AccessLevel, GroupMember, Project, RegistryAccessLevel
from tests_support.factories import make_group, make_project, make_token, make_user

pytestmark = pytest.mark.django_db


def as_user(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(user))
    return client


def _add_projects(group, count: int, *, start: int = 0) -> None:
    levels = list(RegistryAccessLevel.values)
    for number in range(start, start + count):
        project = make_project(group, f"p{number}", container_registry_access_level=levels[number % len(levels)])
        ContainerRepository.objects.create(project=project, name="app")


def test_group_registry_projects_agrees_with_the_per_project_rule(world):
    _add_projects(world["platform"], 6)
    sub = make_group("deep", parent=world["platform"])
    _add_projects(sub, 3, start=10)
    for actor in [*world["users"].values(), make_user("root2", admin=True)]:
        for group in (world["acme"], world["platform"], sub):
            found = set(permissions.group_registry_projects(actor, group).values_list("pk", flat=True))
            below = Project.objects.filter(namespace_id__any=group.self_and_descendant_ids())
            if permissions.READ_GROUP_CONTAINER_IMAGES in permissions.group_abilities(actor, group):
                expected = {p.pk for p in below if permissions.can(actor, permissions.READ_CONTAINER_IMAGE, p)}
            else:
                expected = set()
            assert found == expected, (actor.username, group.full_path)


def test_group_listing_costs_the_same_queries_for_a_larger_group(world):
    owner = world["users"]["owner"]
    reporter = make_user("groupreporter")
    GroupMember.objects.create(group=world["acme"], user=reporter, access_level=AccessLevel.REPORTER)
    _add_projects(world["platform"], 3)
    url = f"/api/v4/groups/{world['acme'].pk}/registry/repositories?per_page=2"
    counts = []
    for extra in (0, 20):
        _add_projects(world["platform"], extra, start=100)
        for user in (owner, reporter):
            client = as_user(user)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(url)
            assert response.status_code == 200
            assert len(response.json()) == 2
            counts.append(len(queries))
    assert counts[:2] == counts[2:]


@pytest.mark.parametrize("tag", ["a%3Fb", "-lead", ".dot", "a" * 129, "%C2%B2", "a%00b", "a b"])
def test_a_tag_name_the_registry_cannot_hold_is_not_found_without_asking_it(world, settings, tag):
    # A closed port: any registry call would answer 503, so a 404 shows none was made.
    settings.REGISTRY_API_URL = "http://127.0.0.1:9"
    repository = ContainerRepository.objects.create(project=world["project"], name="app")
    url = f"/api/v4/projects/{world['project'].pk}/registry/repositories/{repository.pk}/tags/{tag}"
    for method in ("get", "delete"):
        response = getattr(as_user(world["users"]["owner"]), method)(url)
        assert (response.status_code, response.json()) == (404, {"message": "404 Tag Not Found"})
    # The permission is still checked first for a deletion.
    response = as_user(world["users"]["reporter"]).delete(url)
    assert response.status_code == 403


def test_per_page_is_capped_at_100(world):
    response = as_user(world["users"]["owner"]).get("/api/v4/groups", {"per_page": 1000})
    assert response.status_code == 200
    assert response["X-Per-Page"] == "100"
