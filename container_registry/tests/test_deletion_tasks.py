"""The Celery tasks of repository deletion, run in this process (``apply``/eager)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from container_registry.models import ContainerRepository
from gitlab_core.celery import app
from tests_support.factories import make_group, make_project
from tests_support.registry import free_port
from workers import deletion as tasks

Status = ContainerRepository.Status


@pytest.fixture
def eager():
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def dead_registry(settings, registry_keys):
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"


def test_task_names_are_the_ones_the_beat_schedule_uses(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["repository-deletion-scheduler"]
    assert (
        entry["task"] == tasks.schedule_repository_deletions.name == "container_registry.schedule_repository_deletions"
    )
    assert tasks.delete_repository.name == "container_registry.delete_repository"
    assert entry["schedule"].minute == set(range(0, 60, 5))


def test_deletion_task_dies_before_its_claim_counts_as_stale():
    assert tasks.delete_repository.time_limit < 30 * 60


def test_periodic_task_resets_stale_and_runs_due_deletions(db, eager, dead_registry):
    project = make_project(make_group("acme"), "svc")
    due = ContainerRepository.objects.create(project=project, name="due", status=Status.DELETE_SCHEDULED)
    waiting = ContainerRepository.objects.create(
        project=project,
        name="waiting",
        status=Status.DELETE_SCHEDULED,
        next_delete_attempt_at=timezone.now() + dt.timedelta(hours=1),
    )
    stale = ContainerRepository.objects.create(
        project=project,
        name="stale",
        status=Status.DELETE_ONGOING,
        delete_started_at=timezone.now() - dt.timedelta(minutes=45),
    )

    assert tasks.schedule_repository_deletions.apply().get() == 2

    for repo in (due, waiting, stale):
        repo.refresh_from_db()
    # Both were attempted against a registry that refuses connections.
    assert (due.failed_deletion_count, stale.failed_deletion_count) == (1, 1)
    assert due.status == stale.status == Status.DELETE_SCHEDULED
    assert waiting.failed_deletion_count == 0


def test_delete_task_for_a_gone_repository_returns_quietly(db):
    assert tasks.delete_repository.apply(args=[424242]).get() == "skipped"
