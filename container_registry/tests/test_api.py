"""Registry REST endpoints (repositories and tags) without a registry: permissions, order of checks,
shapes. Tag contents are checked against the real registry in test_e2e_registry.py."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from container_registry.models import ContainerRepository
from tests_support.factories import make_group, make_project, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def repos(world):
    project = world["project"]
    return {
        "root": ContainerRepository.objects.create(project=project, name=""),
        "app": ContainerRepository.objects.create(project=project, name="app/web"),
    }


def as_user(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_PRIVATE_TOKEN=make_token(user))
    return client


def project_url(world, suffix: str = "") -> str:
    return f"/api/v4/projects/{world['project'].pk}/registry/repositories{suffix}"


# --- list a project's repositories -------------------------------------------------------


def test_reporter_lists_repositories_with_gitlab_fields(world, repos):
    response = as_user(world["users"]["reporter"]).get(project_url(world))
    assert response.status_code == 200
    assert response["X-Total"] == "2"
    first, second = response.json()
    assert first["id"] == repos["root"].pk
    assert first["name"] == ""
    assert first["path"] == "acme/platform/svc"
    assert first["project_id"] == world["project"].pk
    assert first["location"].endswith("/acme/platform/svc")
    assert first["status"] is None
    assert first["created_at"].endswith("Z")
    assert "tags" not in first and "tags_count" not in first and "size" not in first
    assert "delete_api_path" not in first
    assert second["path"] == "acme/platform/svc/app/web"


def test_project_can_be_named_by_its_encoded_path(world, repos):
    response = as_user(world["users"]["reporter"]).get("/api/v4/projects/acme%2Fplatform%2Fsvc/registry/repositories")
    assert response.status_code == 200
    assert len(response.json()) == 2


def test_maintainer_sees_delete_api_path(world, repos):
    response = as_user(world["users"]["maintainer"]).get(project_url(world))
    path = response.json()[0]["delete_api_path"]
    assert path == f"http://testserver/api/v4/projects/{world['project'].pk}/registry/repositories/{repos['root'].pk}"


@pytest.mark.parametrize(("role", "status"), [("guest", 403), ("outsider", 404), (None, 404)])
def test_private_project_registry_is_hidden_or_forbidden(world, repos, role, status):
    user = world["users"][role] if role else None
    response = as_user(user).get(project_url(world))
    assert response.status_code == status
    if status == 404:
        assert response.json() == {"message": "404 Project Not Found"}


def test_anonymous_lists_a_public_projects_repositories(db):
    group = make_group("pub", visibility="public")
    project = make_project(group, "site", visibility="public")
    ContainerRepository.objects.create(project=project, name="")
    response = APIClient().get(f"/api/v4/projects/{project.pk}/registry/repositories")
    assert response.status_code == 200
    assert response.json()[0]["path"] == "pub/site"


def test_disabled_registry_is_403_even_for_the_owner(world, repos):
    project = world["project"]
    project.container_registry_access_level = "disabled"
    project.save()
    assert as_user(world["users"]["owner"]).get(project_url(world)).status_code == 403


def test_bad_boolean_is_400(world, repos):
    response = as_user(world["users"]["reporter"]).get(project_url(world), {"tags": "maybe"})
    assert response.status_code == 400
    assert response.json() == {"error": "tags is invalid"}


def test_tags_from_an_unreachable_registry_is_503_not_500(world, repos, unreachable_registry):
    response = as_user(world["users"]["reporter"]).get(project_url(world), {"tags_count": "true"})
    assert response.status_code == 503
    assert "message" in response.json()


def test_keyset_tag_pagination_is_405_without_gitlabs_registry_api(world, repos, unreachable_registry):
    url = project_url(world, f"/{repos['app'].pk}/tags")
    response = as_user(world["users"]["reporter"]).get(url, {"pagination": "keyset", "per_page": 2})
    assert response.status_code == 405
    assert response.json() == {"message": "405 Method Not Allowed"}
    # Still checked first: who may read, and whether the repository is the project's.
    assert as_user(world["users"]["outsider"]).get(url, {"pagination": "keyset"}).status_code == 404
    missing = project_url(world, f"/{repos['app'].pk + 1000}/tags")
    assert as_user(world["users"]["reporter"]).get(missing, {"pagination": "keyset"}).status_code == 404


def test_pagination_headers(world, repos):
    response = as_user(world["users"]["reporter"]).get(project_url(world), {"per_page": 1, "page": 2})
    assert [r["name"] for r in response.json()] == ["app/web"]
    assert response["X-Total-Pages"] == "2"
    assert response["X-Prev-Page"] == "1"


def test_read_api_token_lists(world, repos):
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(world["users"]["reporter"], scopes=["read_api"]))
    assert client.get(project_url(world)).status_code == 200


# --- delete a repository ------------------------------------------------------------------


def test_maintainer_schedules_repository_deletion(world, repos):
    before = timezone.now()
    response = as_user(world["users"]["maintainer"]).delete(project_url(world, f"/{repos['app'].pk}"))
    assert response.status_code == 202
    repository = ContainerRepository.objects.get(pk=repos["app"].pk)
    assert repository.status == "delete_scheduled"
    assert repository.status_updated_at >= before
    assert before <= repository.next_delete_attempt_at <= timezone.now()
    listed = as_user(world["users"]["maintainer"]).get(project_url(world)).json()
    assert [r["status"] for r in listed] == [None, "delete_scheduled"]


def test_repeated_delete_is_202_and_keeps_the_schedule(world, repos):
    client = as_user(world["users"]["owner"])
    url = project_url(world, f"/{repos['app'].pk}")
    client.delete(url)
    first = ContainerRepository.objects.get(pk=repos["app"].pk).status_updated_at
    assert client.delete(url).status_code == 202
    assert ContainerRepository.objects.get(pk=repos["app"].pk).status_updated_at == first


def test_failed_deletion_is_scheduled_again(world, repos):
    ContainerRepository.objects.filter(pk=repos["app"].pk).update(status="delete_failed", failed_deletion_count=10)
    as_user(world["users"]["owner"]).delete(project_url(world, f"/{repos['app'].pk}"))
    assert ContainerRepository.objects.get(pk=repos["app"].pk).status == "delete_scheduled"


def test_ongoing_deletion_is_left_to_the_worker(world, repos):
    ContainerRepository.objects.filter(pk=repos["app"].pk).update(status="delete_ongoing")
    assert as_user(world["users"]["owner"]).delete(project_url(world, f"/{repos['app'].pk}")).status_code == 202
    assert ContainerRepository.objects.get(pk=repos["app"].pk).status == "delete_ongoing"


def test_developer_may_not_delete_a_repository(world, repos):
    response = as_user(world["users"]["developer"]).delete(project_url(world, f"/{repos['app'].pk}"))
    assert response.status_code == 403
    assert ContainerRepository.objects.get(pk=repos["app"].pk).status is None


def test_reporter_deleting_a_missing_repository_gets_404_before_403(world):
    response = as_user(world["users"]["reporter"]).delete(project_url(world, "/999999"))
    assert response.status_code == 404
    assert response.json() == {"message": "404 Not found"}


def test_repository_of_another_project_is_404(world, repos):
    other = make_project(world["platform"], "other", creator=world["users"]["owner"])
    foreign = ContainerRepository.objects.create(project=other, name="x")
    response = as_user(world["users"]["owner"]).delete(project_url(world, f"/{foreign.pk}"))
    assert response.status_code == 404


def test_non_numeric_repository_id_is_400(world):
    response = as_user(world["users"]["owner"]).delete(project_url(world, "/abc"))
    assert response.status_code == 400
    assert response.json() == {"error": "repository_id is invalid"}


def test_python_gitlab_empty_json_body_on_delete_is_tolerated(world, repos):
    client = as_user(world["users"]["owner"])
    response = client.generic(
        "DELETE", project_url(world, f"/{repos['app'].pk}"), data="", content_type="application/json"
    )
    assert response.status_code == 202


# --- group repositories -------------------------------------------------------------------


def test_group_owner_lists_repositories_of_subgroups(world, repos):
    response = as_user(world["users"]["owner"]).get(f"/api/v4/groups/{world['acme'].pk}/registry/repositories")
    assert response.status_code == 200
    assert [r["id"] for r in response.json()] == [repos["root"].pk, repos["app"].pk]
    assert all(r["project_id"] == world["project"].pk for r in response.json())


def test_group_by_path_and_project_member_without_group_access(world, repos):
    url = "/api/v4/groups/acme%2Fplatform/registry/repositories"
    assert as_user(world["users"]["maintainer"]).get(url).status_code == 200
    # A project reporter sees the group (member below it) but has no group-level access.
    assert as_user(world["users"]["reporter"]).get(url).status_code == 403
    assert as_user(world["users"]["outsider"]).get(url).status_code == 404


def test_group_listing_skips_projects_whose_registry_is_disabled(world, repos):
    project = world["project"]
    project.container_registry_access_level = "disabled"
    project.save()
    response = as_user(world["users"]["owner"]).get(f"/api/v4/groups/{world['acme'].pk}/registry/repositories")
    assert response.json() == []


# --- one repository by id -----------------------------------------------------------------


def test_single_repository_needs_authentication(world, repos):
    response = APIClient().get(f"/api/v4/registry/repositories/{repos['root'].pk}")
    assert response.status_code == 401


def test_single_repository_is_403_for_an_outsider_and_404_when_missing(world, repos):
    outsider = as_user(world["users"]["outsider"])
    assert outsider.get(f"/api/v4/registry/repositories/{repos['root'].pk}").status_code == 403
    missing = outsider.get("/api/v4/registry/repositories/424242")
    assert missing.status_code == 404
    assert missing.json() == {"message": "404 Not found"}


def test_single_repository_for_a_reporter(world, repos):
    response = as_user(world["users"]["reporter"]).get(f"/api/v4/registry/repositories/{repos['app'].pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["path"] == "acme/platform/svc/app/web"
    assert body["last_deletion_error"] is None
    assert "size" not in body


def test_single_repository_shows_the_last_deletion_error(world, repos):
    ContainerRepository.objects.filter(pk=repos["app"].pk).update(
        status="delete_failed", last_deletion_error="registry said no", last_deletion_error_at=timezone.now()
    )
    body = as_user(world["users"]["owner"]).get(f"/api/v4/registry/repositories/{repos['app'].pk}").json()
    assert body["status"] == "delete_failed"
    assert body["last_deletion_error"] == "registry said no"
    assert body["last_deletion_error_at"].endswith("Z")


@pytest.mark.parametrize("raw", ["abc", "1.5", "99999999999999999999999"])
def test_single_repository_bad_id_is_400(world, raw):
    response = as_user(world["users"]["owner"]).get(f"/api/v4/registry/repositories/{raw}")
    assert response.status_code == 400


# --- tags: checks that come before the registry -------------------------------------------


def test_tag_routes_of_a_hidden_project_are_404(world, repos):
    outsider = as_user(world["users"]["outsider"])
    base = project_url(world, f"/{repos['root'].pk}/tags")
    assert outsider.get(base).status_code == 404
    assert outsider.get(f"{base}/v1").status_code == 404
    assert outsider.delete(f"{base}/v1").status_code == 404


def test_reporter_may_not_delete_a_tag(world, repos):
    response = as_user(world["users"]["reporter"]).delete(project_url(world, f"/{repos['root'].pk}/tags/v1"))
    assert response.status_code == 403


def test_tag_of_a_missing_repository_is_404(world):
    response = as_user(world["users"]["developer"]).delete(project_url(world, "/424242/tags/v1"))
    assert response.status_code == 404
    assert response.json() == {"message": "404 Not found"}


@pytest.mark.parametrize("raw_id", ["%C2%B2", "%D9%A3", "99999999999999999999999", "0"])
def test_an_id_that_is_not_an_ascii_number_names_no_project(world, repos, raw_id):
    # "²" and "٣" are digits to str.isdigit() but not numbers; huge ids overflow.
    response = as_user(world["users"]["reporter"]).get(f"/api/v4/projects/{raw_id}/registry/repositories")
    assert response.status_code == 404
    assert response.json() == {"message": "404 Project Not Found"}
