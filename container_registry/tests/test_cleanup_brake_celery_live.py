"""The mass-deletion brake through a real Celery worker on Redis, against the real
registry: a new policy's first run that would delete more than the limit deletes no tag
and holds the repository; a Maintainer's release lets the next run delete; a later run
of the unchanged policy deletes a mass of new tags without being held. Runs in the
PostgreSQL + Redis pass of the test script."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from container_registry import scheduling
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.tests.test_cleanup_celery_live import RUN_DEADLINE_SECONDS, maintainer_project, wait_for
from container_registry.tests.test_cleanup_e2e import enable_policy, remaining
from container_registry.tests.test_cleanup_speed import push_tags
from gitlab_core.models import ApplicationSettings, AuditEvent
from projects.models import ProjectMember
from tests_support.celery_live import live_celery
from tests_support.factories import make_token
from workers.cleanup import schedule_cleanup_policies

pytestmark = [pytest.mark.e2e, pytest.mark.celery_live, pytest.mark.django_db(transaction=True)]

BRAKE_TAGS = 100
DOOMED = [f"t{i:03d}" for i in range(150)]


def status(repository) -> str:
    return ContainerRepository.objects.values_list("expiration_policy_cleanup_status", flat=True).get(pk=repository.pk)


def finished(repository) -> bool:
    row = ContainerRepository.objects.get(pk=repository.pk)
    return row.expiration_policy_cleanup_status == "cleanup_unscheduled" and row.last_cleanup_stop_reason == "finished"


def test_the_brake_holds_a_mass_deletion_until_a_maintainer_releases_it(registry, tmp_path):
    settings = ApplicationSettings.current()
    # The limit by count alone: 150 of 152 tags would trip the 50 % limit as well.
    settings.container_registry_cleanup_brake_tags = BRAKE_TAGS
    settings.container_registry_cleanup_brake_percent = 0
    settings.save()
    project, creds = maintainer_project("brake")
    path = f"{project.full_path}/app"
    push_tags(registry, tmp_path, path, ["latest", "keep-me", *DOOMED])
    repository, _ = ContainerRepository.objects.get_or_create(project=project, name="app")
    enable_policy(project, name_regex="t.*")

    with live_celery() as celery:
        schedule_cleanup_policies.delay()
        wait_for(lambda: status(repository) == "cleanup_held", celery, "the brake to hold the run")

        assert len(remaining(registry, creds, path)) == 152
        row = ContainerRepository.objects.get(pk=repository.pk)
        assert (row.cleanup_held_plan["delete"], row.cleanup_held_plan["tags"]) == (150, 152)
        held = AuditEvent.objects.get(event_name="container_repository_cleanup_held", entity_id=project.pk)
        assert "would delete 150 of 152 tags" in held.details["custom_message"]
        # Held, the scheduler leaves it alone.
        assert repository.pk not in scheduling.schedule_cleanup_policies().to_start
        assert status(repository) == "cleanup_held"

        maintainer = ProjectMember.objects.get(project=project).user
        api = APIClient()
        api.credentials(HTTP_PRIVATE_TOKEN=make_token(maintainer))
        url = f"/api/v4/projects/{project.pk}/registry/repositories/{repository.pk}/cleanup/release"
        assert api.post(url).status_code == 201
        schedule_cleanup_policies.delay()
        wait_for(lambda: finished(repository), celery, "the released run", timeout=RUN_DEADLINE_SECONDS)
        assert remaining(registry, creds, path) == ["keep-me", "latest"]

        # The same policy, due again, on a new mass of tags: no first run, no brake.
        push_tags(registry, tmp_path, path, [f"t{i}" for i in range(500, 620)])
        enable_policy(project, name_regex="t.*")  # the same rules
        # Due again now, after the released run started (a new cycle).
        ContainerExpirationPolicy.objects.filter(project=project).update(next_run_at=timezone.now())
        assert ContainerRepository.objects.get(pk=repository.pk).cleanup_policy_revision == (
            ContainerExpirationPolicy.objects.get(project=project).rules_revision
        )
        schedule_cleanup_policies.delay()
        wait_for(
            lambda: (
                status(repository) == "cleanup_unscheduled"
                and remaining(registry, creds, path) == ["keep-me", "latest"]
            ),
            celery,
            "the later run to delete the new tags",
            timeout=RUN_DEADLINE_SECONDS,
        )
    assert AuditEvent.objects.filter(event_name="container_repository_cleanup_held").count() == 1
