"""Cleanup policies driven by a real Celery beat and worker on Redis (not eager mode),
against the real registry. Runs in the PostgreSQL + Redis pass of the test script."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.tests.test_cleanup_e2e import enable_policy, push, remaining
from gitlab_core.models import ApplicationSettings
from projects.models import AccessLevel, ProjectMember
from tests_support.celery_live import live_celery
from tests_support.factories import make_group, make_project, make_token, make_user

pytestmark = [pytest.mark.e2e, pytest.mark.celery_live, pytest.mark.django_db(transaction=True)]

# Beat fires a crontab entry at the next whole minute; allow for that and the runs.
DEADLINE_SECONDS = 150


def wait_for(predicate, celery, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        if predicate():
            return
        assert celery.alive(), f"a Celery process exited while waiting for {what}:\n{celery.log()}"
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{celery.log()}")


def test_beat_and_worker_run_due_policies_to_the_end(registry, tmp_path):
    user = make_user("live")
    project = make_project(make_group("beat-group"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    creds = f"live:{make_token(user, scopes=['api', 'write_registry', 'read_registry'])}"
    images = {f"old{i}": (100 + i, [f"old{i}"]) for i in range(5)}
    repository = push(registry, tmp_path, project, creds, {**images, "young": (1, ["young"])})
    other = push(registry, tmp_path, project, creds, {"o1": (100, ["v1"]), "o2": (100, ["v2"])}, name="other")
    settings = ApplicationSettings.current()
    settings.container_registry_cleanup_tags_service_max_list_size = 2  # several resumed runs
    settings.save()
    enable_policy(project, name_regex=".*", older_than="7d", cadence="7d")
    due_at = ContainerExpirationPolicy.objects.get(project=project).next_run_at

    def done() -> bool:
        rows = ContainerRepository.objects.filter(pk__in=[repository.pk, other.pk])
        return all(
            r.expiration_policy_cleanup_status == "cleanup_unscheduled" and r.expiration_policy_completed_at
            for r in rows
        )

    # Every minute instead of minute 50, so that the test need not wait an hour.
    with live_celery(beat=True, env={"CLEANUP_POLICY_CRON_MINUTE": "*"}) as celery:
        wait_for(done, celery, "both repositories to be cleaned")

    assert remaining(registry, creds, repository.path) == ["young"]
    assert remaining(registry, creds, other.path) == []
    repository.refresh_from_db()
    assert repository.last_cleanup_stop_reason == "finished"
    policy = ContainerExpirationPolicy.objects.get(project=project)
    assert policy.next_run_at > timezone.now() + timezone.timedelta(days=6)
    assert policy.next_run_at != due_at
