"""Repository deletion against the real registry (distribution 2.8) and skopeo.

Time is moved by passing ``now=`` to the services; nothing waits for the backoff.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.utils import timezone

from container_registry import deletion, maintenance
from container_registry.client import get_client
from container_registry.models import ContainerRepository
from projects.models import AccessLevel, ProjectMember
from tests_support import db_faults
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import build_image, list_tags, skopeo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Status = ContainerRepository.Status
BASE_DIR = Path(django_settings.BASE_DIR)


@pytest.fixture
def pusher(db):
    """A maintainer of ``acme/svc`` and the skopeo credentials of their token."""
    user = make_user("pusher")
    project = make_project(make_group("acme"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    return project, f"pusher:{make_token(user, scopes=['api', 'write_registry', 'read_registry'])}"


def push(registry, tmp_path, project, creds, name: str, tags: list[str], seed: str = "") -> ContainerRepository:
    """Push one image per tag (tags listed together share one image) and return the row."""
    path = f"{project.full_path}/{name}"
    for tag in tags:
        source = build_image(tmp_path / f"layout-{name}", size=2048, seed=seed or name, tag=tag)
        skopeo("copy", source, registry.ref(path, tag), creds=creds)
    repository, _ = ContainerRepository.objects.get_or_create(project=project, name=name)
    return repository


def registry_tags(registry, creds, path: str) -> list[str]:
    return list_tags(registry, path, creds=creds)


def schedule(repository: ContainerRepository) -> None:
    ContainerRepository.objects.filter(pk=repository.pk).update(
        status=Status.DELETE_SCHEDULED, status_updated_at=timezone.now()
    )


def test_repository_with_tags_is_deleted_end_to_end(registry, pusher, tmp_path):
    project, creds = pusher
    doomed = push(registry, tmp_path, project, creds, "app", ["v1", "v2", "latest"])
    kept = push(registry, tmp_path, project, creds, "kept", ["v1"], seed="app")  # same image, other repository
    assert registry_tags(registry, creds, doomed.path) == ["latest", "v1", "v2"]
    schedule(doomed)

    outcome = deletion.delete_repository(repository_id=doomed.pk)

    assert (outcome.result, outcome.deleted_tags) == ("deleted", 3)
    assert registry_tags(registry, creds, "acme/svc/app") == []
    assert not ContainerRepository.objects.filter(pk=doomed.pk).exists()
    assert registry_tags(registry, creds, kept.path) == ["v1"]
    assert deletion.delete_repository(repository_id=doomed.pk).result == "skipped"


def test_a_row_that_cannot_be_removed_after_its_tags_are_gone_is_retried_after_the_backoff(registry, pusher, tmp_path):
    """A real fault: a trigger refuses the DELETE of the row after the registry removed
    the tags."""
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "v2"])
    schedule(repository)
    with db_faults.refused_deletes("container_repositories"):
        before = timezone.now()
        outcome = deletion.delete_repository(repository_id=repository.pk)
    assert (outcome.result, outcome.deleted_tags) == ("rescheduled", 2)
    assert registry_tags(registry, creds, repository.path) == []
    repository.refresh_from_db()
    assert repository.status == Status.DELETE_SCHEDULED  # never left delete_ongoing
    assert repository.failed_deletion_count == 1
    assert db_faults.MESSAGE in repository.last_deletion_error
    assert repository.next_delete_attempt_at >= before + dt.timedelta(minutes=1)
    assert deletion.delete_repository(repository_id=repository.pk).result == "skipped"  # waiting

    later = repository.next_delete_attempt_at
    assert deletion.delete_repository(repository_id=repository.pk, now=later).result == "deleted"
    assert not ContainerRepository.objects.filter(pk=repository.pk).exists()


def test_stopped_registry_backs_off_then_fails_and_retry_completes_the_deletion(registry, pusher, tmp_path):
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "v2"])
    schedule(repository)
    registry.stop()

    now = timezone.now()
    waits = []
    for _ in range(10):
        assert deletion.delete_repository(repository_id=repository.pk, now=now).result == "rescheduled"
        repository.refresh_from_db()
        waits.append(repository.next_delete_attempt_at - now)
        now = repository.next_delete_attempt_at
    assert deletion.delete_repository(repository_id=repository.pk, now=now).result == "failed"

    for n, wait in enumerate(waits):
        base = dt.timedelta(minutes=2**n)
        assert base <= wait <= base * (1 + deletion.BACKOFF_JITTER_FRACTION), (n, wait)
    repository.refresh_from_db()
    assert (repository.status, repository.failed_deletion_count) == (Status.DELETE_FAILED, 10)
    assert "ConnectionError" in repository.last_deletion_error
    assert deletion.schedule_due_deletions(now=now + dt.timedelta(days=30)) == []

    result = maintenance.retry_failed_deletions(repository_id=repository.pk)
    assert result.count == 1
    repository.refresh_from_db()
    assert (repository.status, repository.failed_deletion_count) == (Status.DELETE_SCHEDULED, 0)
    registry.start()
    summary = maintenance.process_repository_deletions()

    assert summary.count("deleted") == 1
    assert not ContainerRepository.objects.filter(pk=repository.pk).exists()
    assert registry_tags(registry, creds, "acme/svc/app") == []


def _database_url() -> str:
    """The test database as a DATABASE_URL, for a child process."""
    conf = connection.settings_dict
    if conf["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{conf['NAME']}"
    user, password = quote(conf["USER"] or "", safe=""), quote(conf["PASSWORD"] or "", safe="")
    return f"postgres://{user}:{password}@{conf['HOST'] or 'localhost'}:{conf['PORT'] or 5432}/{conf['NAME']}"


def test_worker_killed_mid_deletion_is_reset_and_a_later_run_finishes(registry, pusher, tmp_path, settings):
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1"])
    schedule(repository)
    # A registry that accepts connections and never answers keeps the worker busy
    # inside the deletion, so that it can be killed there.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "REGISTRY_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
            "REGISTRY_KEY_PATH": settings.REGISTRY_KEY_PATH,
            "REGISTRY_REQUEST_TIMEOUT": "120",
            "DJANGO_SETTINGS_MODULE": "gitlab_core.settings",
        }
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "process_repository_deletions"],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and worker.poll() is None:
                repository.refresh_from_db()
                if repository.status == Status.DELETE_ONGOING:
                    break
                time.sleep(0.05)
            assert repository.status == Status.DELETE_ONGOING, worker.communicate(timeout=5)[0]
            time.sleep(0.2)  # let it reach the registry call
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert worker.returncode == -signal.SIGKILL

    repository.refresh_from_db()
    assert repository.status == Status.DELETE_ONGOING
    started = repository.delete_started_at
    # Within 30 minutes the claim stands: nobody else may touch it.
    assert deletion.schedule_due_deletions(now=started + dt.timedelta(minutes=29)) == []
    later = started + dt.timedelta(minutes=31)
    assert deletion.schedule_due_deletions(now=later) == [repository.pk]
    repository.refresh_from_db()
    assert (repository.status, repository.failed_deletion_count) == (Status.DELETE_SCHEDULED, 0)

    summary = maintenance.process_repository_deletions(now=later)
    assert summary.count("deleted") == 1
    assert registry_tags(registry, creds, "acme/svc/app") == []


def test_two_workers_racing_for_one_repository_delete_it_once(registry, pusher, tmp_path):
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "v2"])
    schedule(repository)
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        try:
            start.wait(timeout=10)
            outcomes.append(deletion.delete_repository(repository_id=repository.pk).result)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(outcomes) == ["deleted", "skipped"]
    assert registry_tags(registry, creds, "acme/svc/app") == []


def test_many_claims_at_once_give_the_repository_to_one(pusher):
    project, _ = pusher
    repository = ContainerRepository.objects.create(project=project, name="app", status=Status.DELETE_SCHEDULED)
    start = threading.Barrier(6)
    winners: list[bool] = []

    def claim() -> None:
        try:
            start.wait(timeout=10)
            winners.append(deletion.claim_repository_for_deletion(repository_id=repository.pk) is not None)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=claim) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(winners) == [False] * 5 + [True]


def test_deleting_a_project_deletes_its_images_before_the_project_row(registry, pusher, tmp_path):
    from projects.models import Project
    from projects.services import request_project_deletion

    project, creds = pusher
    push(registry, tmp_path, project, creds, "app", ["v1"])
    push(registry, tmp_path, project, creds, "worker", ["v1", "v2"], seed="w")
    assert registry_tags(registry, creds, "acme/svc/worker") == ["v1", "v2"]

    request_project_deletion(project=project)
    assert Project.objects.filter(pk=project.pk, pending_delete=True).exists()
    summary = maintenance.process_repository_deletions()

    assert summary.count("deleted") == 2
    assert not Project.objects.filter(pk=project.pk).exists()
    # The project is gone, so no user may read it any more: ask the registry with the
    # service's own token.
    client = get_client()
    assert client.list_tags("acme/svc/app") == client.list_tags("acme/svc/worker") == []
