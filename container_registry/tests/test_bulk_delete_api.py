"""DELETE .../registry/repositories/:id/tags (bulk) and the cleanup-plan endpoints:
validation, permissions and the hourly limit. What the task deletes is tested in
``test_cleanup_service`` and, against the real registry, in ``test_cleanup_e2e``."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from container_registry.models import ContainerRepository
from workers import cleanup as cleanup_tasks


@pytest.fixture
def repo(world):
    return ContainerRepository.objects.create(project=world["project"], name="app")


@pytest.fixture
def enqueued(monkeypatch):
    """The broker is the process boundary: record what would be sent to it."""
    sent = []
    monkeypatch.setattr(cleanup_tasks.cleanup_tags, "delay_on_commit", lambda *args: sent.append(args))
    cache.clear()
    return sent


def bulk(client, world, api_token, repo_id, role="maintainer", **params):
    token = api_token(world["users"][role])
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = f"/api/v4/projects/{world['project'].pk}/registry/repositories/{repo_id}/tags?{query}"
    return client.delete(url, HTTP_PRIVATE_TOKEN=token)


def test_maintainer_gets_202_and_the_task_gets_the_parameters(client, world, api_token, repo, enqueued):
    response = bulk(
        client, world, api_token, repo.pk, name_regex_delete=".*", name_regex_keep="main", keep_n=5, older_than="1d"
    )
    assert response.status_code == 202
    user = world["users"]["maintainer"]
    assert enqueued == [
        (user.pk, repo.pk, {"name_regex_delete": ".*", "name_regex_keep": "main", "keep_n": 5, "older_than": "1d"})
    ]


def test_the_deprecated_name_regex_is_accepted(client, world, api_token, repo, enqueued):
    assert bulk(client, world, api_token, repo.pk, name_regex="v.*").status_code == 202
    assert enqueued[0][2]["name_regex_delete"] == "v.*"


def test_a_second_request_within_the_hour_is_refused(client, world, api_token, repo, enqueued):
    assert bulk(client, world, api_token, repo.pk, name_regex_delete=".*").status_code == 202
    response = bulk(client, world, api_token, repo.pk, role="owner", name_regex_delete="v1")
    assert response.status_code == 400
    assert response.json() == {
        "message": "This request has already been made. You can run this at most once an hour for a given "
        "container repository"
    }
    assert len(enqueued) == 1


def test_a_delete_regex_is_required(client, world, api_token, repo, enqueued):
    response = bulk(client, world, api_token, repo.pk, keep_n=1)
    assert response.status_code == 400
    assert response.json() == {
        "error": "name_regex, name_regex_delete are missing, at least one parameter must be provided"
    }


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"name_regex_delete": "["}, "name_regex_delete is an invalid regexp: "),
        ({"name_regex_delete": ".*", "name_regex_keep": "(?=x)"}, "name_regex_keep is an invalid regexp: "),
        ({"name_regex_delete": ".*", "keep_n": "many"}, "keep_n is invalid"),
        ({"name_regex_delete": ".*", "older_than": "soon"}, "older_than is invalid"),
    ],
)
def test_bad_parameters_are_400_before_anything_else(client, world, api_token, repo, enqueued, params, error):
    response = bulk(client, world, api_token, 987654, **params)  # even for an unknown repository
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    assert enqueued == []


def test_developer_is_forbidden_and_takes_no_lease(client, world, api_token, repo, enqueued):
    assert bulk(client, world, api_token, repo.pk, role="developer", name_regex_delete=".*").status_code == 403
    assert bulk(client, world, api_token, repo.pk, name_regex_delete=".*").status_code == 202


def test_unknown_repository_is_404(client, world, api_token, enqueued):
    assert bulk(client, world, api_token, 987654, name_regex_delete=".*").status_code == 404


def test_outsider_does_not_learn_the_project_exists(client, world, api_token, repo, enqueued):
    response = bulk(client, world, api_token, repo.pk, role="outsider", name_regex_delete=".*")
    assert response.status_code == 404


def plan(client, world, api_token, path, role="maintainer", **params):
    token = api_token(world["users"][role])
    return client.get(f"/api/v4/projects/{world['project'].pk}/registry/{path}", params, HTTP_PRIVATE_TOKEN=token)


def test_cleanup_plan_needs_maintainer(client, world, api_token, repo):
    assert plan(client, world, api_token, f"repositories/{repo.pk}/cleanup_plan", role="developer").status_code == 403
    assert plan(client, world, api_token, "cleanup_plan", role="reporter").status_code == 403
    assert plan(client, world, api_token, "cleanup_plan", role="outsider").status_code == 404


def test_cleanup_plan_rejects_bad_override_parameters(client, world, api_token, repo):
    response = plan(client, world, api_token, f"repositories/{repo.pk}/cleanup_plan", name_regex_delete="(")
    assert response.status_code == 400
    assert response.json()["error"].startswith("name_regex_delete is an invalid regexp")


def test_cleanup_plan_of_an_unreachable_registry_is_503_not_500(client, world, api_token, repo, unreachable_registry):
    response = plan(client, world, api_token, f"repositories/{repo.pk}/cleanup_plan")
    assert response.status_code == 503


def test_cleanup_plan_of_a_project_without_repositories_is_empty(client, world, api_token):
    response = plan(client, world, api_token, "cleanup_plan")
    assert response.status_code == 200
    body = response.json()
    assert body["repositories"] == [] and body["rules"]["source"] == "policy"
    assert body["rules"]["name_regex_delete"] == ".*" and body["policy"]["enabled"] is False
