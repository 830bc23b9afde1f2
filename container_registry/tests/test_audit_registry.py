"""Audit events of the registry app: deletions scheduled, failed for good and retried,
bulk tag deletions requested, cleanup policies changed."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.core.management import call_command

from container_registry import deletion
from container_registry.models import ContainerRepository
from gitlab_core.models import AuditEvent
from tests_support.registry import free_port
from workers import cleanup as cleanup_tasks

Status = ContainerRepository.Status


def events(event_name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_name=event_name).order_by("id"))


@pytest.fixture
def repo(world):
    return ContainerRepository.objects.create(project=world["project"], name="app")


@pytest.fixture
def dead_registry(settings, registry_keys):
    """A registry that refuses connections: a real fault, every deletion attempt fails."""
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"


def test_a_deletion_scheduled_through_the_api_is_audited_once(client, world, api_token, repo):
    maintainer = world["users"]["maintainer"]
    url = f"/api/v4/projects/{world['project'].pk}/registry/repositories/{repo.pk}"
    token = api_token(maintainer)

    assert client.delete(url, HTTP_PRIVATE_TOKEN=token, REMOTE_ADDR="203.0.113.5").status_code == 202
    # Already scheduled: nothing changes, nothing is recorded.
    assert client.delete(url, HTTP_PRIVATE_TOKEN=token).status_code == 202

    [event] = events("container_repository_deletion_scheduled")
    assert (event.author_id, event.entity_type, event.entity_id) == (maintainer.pk, "Project", world["project"].pk)
    assert (event.target_type, event.target_id, event.target_details) == (
        "ContainerRepository",
        repo.pk,
        "acme/platform/svc/app",
    )
    assert event.ip_address == "203.0.113.5"


def test_a_deletion_that_fails_for_good_and_its_retry_are_audited(repo, dead_registry):
    ContainerRepository.objects.filter(pk=repo.pk).update(status=Status.DELETE_SCHEDULED, failed_deletion_count=10)

    assert deletion.delete_repository(repository_id=repo.pk).result == "failed"
    [failed] = events("container_repository_deletion_failed")
    assert failed.author_id == -1 and failed.target_id == repo.pk
    assert failed.details["custom_message"].startswith("Deletion failed for good after 10 retries: ")

    call_command("retry_failed_deletions", "--all")
    call_command("retry_failed_deletions", "--all")  # nothing left in delete_failed
    [retried] = events("container_repository_deletion_retried")
    assert retried.target_id == repo.pk and retried.author_id == -1


def test_deleting_a_project_audits_it_and_the_scheduling_of_its_repositories(client, world, api_token, repo):
    owner = world["users"]["owner"]

    assert (
        client.delete(f"/api/v4/projects/{world['project'].pk}", HTTP_PRIVATE_TOKEN=api_token(owner)).status_code == 202
    )

    [destroyed] = events("project_destroyed")
    [scheduled] = events("container_repository_deletion_scheduled")
    assert destroyed.author_id == scheduled.author_id == owner.pk
    assert scheduled.details["custom_message"] == "Scheduled deletion of 1 container repositories with the project"


def test_a_bulk_tag_deletion_request_is_audited_with_its_rules(client, world, api_token, repo, monkeypatch):
    monkeypatch.setattr(cleanup_tasks.cleanup_tags, "delay_on_commit", lambda *args: None)
    cache.clear()
    url = f"/api/v4/projects/{world['project'].pk}/registry/repositories/{repo.pk}/tags?name_regex_delete=v.*&keep_n=2"

    assert client.delete(url, HTTP_PRIVATE_TOKEN=api_token(world["users"]["maintainer"])).status_code == 202
    # The hourly limit refuses the second request: no event for it.
    assert client.delete(url, HTTP_PRIVATE_TOKEN=api_token(world["users"]["maintainer"])).status_code == 400

    [event] = events("container_repository_tags_bulk_delete_requested")
    assert event.details["custom_message"] == "Requested deletion of the tags matching keep_n=2, name_regex_delete=v.*"


def test_cleanup_policy_changes_through_the_api_are_audited_per_attribute(client, world, api_token):
    project = world["project"]
    response = client.put(
        f"/api/v4/projects/{project.pk}",
        {"container_expiration_policy_attributes": {"cadence": "7d", "keep_n": 50, "name_regex": ".*"}},
        content_type="application/json",
        HTTP_PRIVATE_TOKEN=api_token(world["users"]["maintainer"]),
    )
    assert response.status_code == 200

    changes = {
        e.details["change"]: (e.details["from"], e.details["to"]) for e in events("project_cleanup_policy_updated")
    }
    # name_regex was already ".*": only what changed is recorded.
    assert changes == {"cadence": ("1d", "7d"), "keep_n": (10, 50)}


def test_policies_the_system_turns_off_are_audited(world):
    from container_registry.models import ContainerExpirationPolicy
    from container_registry.policies import disable_policies_without_repositories, disable_policy

    project = world["project"]
    ContainerExpirationPolicy.objects.filter(project=project).update(enabled=True)
    assert disable_policies_without_repositories() == [project.pk]
    [event] = events("project_cleanup_policy_updated")
    assert (event.entity_type, event.entity_id, event.author_id) == ("Project", project.pk, -1)
    assert (event.details["change"], event.details["from"], event.details["to"]) == ("enabled", True, False)

    ContainerExpirationPolicy.objects.filter(project=project).update(enabled=True)
    assert disable_policy(project_id=project.pk, reason="invalid_policy: name_regex is blank")
    assert "name_regex is blank" in events("project_cleanup_policy_updated")[-1].details["target_details"]
