"""Repository deletion through real Celery workers on a real Redis broker, against the
real registry: the periodic task enqueues the deletion, a worker performs it; a worker
killed mid-deletion leaves a claim that the stale reset hands to a new worker; two
workers racing for one repository delete it once.

Time is moved by rewriting ``delete_started_at``, never waited for.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from container_registry.models import ContainerRepository
from container_registry.tests.test_deletion_e2e import push, registry_tags, schedule
from gitlab_core.celery import app
from projects.models import AccessLevel, ProjectMember
from tests_support import db_faults
from tests_support.celery_live import child_environment
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import free_port

pytestmark = [pytest.mark.celery_live, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Status = ContainerRepository.Status
DEADLINE = 60
DELETE_TASK = "container_registry.delete_repository"
SCHEDULE_TASK = "container_registry.schedule_repository_deletions"
# Celery's JSON line for a finished task: "Task <name>[<id>] succeeded in 0.1s: <repr(result)>",
# with the name and result in its ``data``.
_SUCCEEDED = re.compile(r"Task [\w.]+\[[0-9a-f-]+\] succeeded in ")


def _wait(predicate, *, timeout: float, what: str, log=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log() if log else ''}")


def task_results(log: str, name: str) -> list[str]:
    """The results (as logged, e.g. ``'deleted'``) of every finished ``name`` task."""
    lines = []
    for text in log.splitlines():
        try:
            lines.append(json.loads(text))
        except ValueError:
            continue  # the start-up banner, or the last line of a killed worker
    return [
        line["data"]["return_value"]
        for line in lines
        if isinstance(line, dict)
        and line.get("logger") == "celery.app.trace"
        and _SUCCEEDED.match(line["message"])
        and line["data"]["name"] == name
    ]


@pytest.fixture
def redis_url(tmp_path, settings):
    """A throwaway redis-server on a free loopback port (no persistence); the workers'
    broker, so that no message of another run can reach them."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("celery_live tests need redis-server")
        pytest.skip("celery_live tests need redis-server")
    port = free_port()
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        import redis

        _wait(lambda: _pings(redis.Redis.from_url(url)), timeout=10, what="redis-server")
        # child_environment() hands this broker to the workers.
        settings.CELERY_BROKER_URL = url
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001  (any failure means "not up yet")
        return False


def send(redis_url: str, name: str, *args) -> None:
    """Send a task through the real broker, as beat or the web process would."""
    with app.connection_for_write(redis_url) as connection:
        app.send_task(name, args=list(args), connection=connection)


def blocked_consumers(redis_url: str) -> int:
    """How many broker clients are waiting for a message right now (idle workers)."""
    import redis

    return sum(1 for client in redis.Redis.from_url(redis_url).client_list() if client.get("cmd") == "brpop")


@dataclass
class Worker:
    """One ``celery worker`` (prefork, one child) in its own process group."""

    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole group (main process and pool child), as the OOM killer or a
        node failure would: nothing gets to clean up or acknowledge."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def start_worker(redis_url, registry, tmp_path) -> Iterator[Callable[..., Worker]]:
    """``start_worker(name, env={...})`` starts a real worker on the test database, the
    Redis broker and (unless ``env`` says otherwise) the test registry, and waits until
    it is ready. All are stopped after the test."""
    workers: list[Worker] = []

    def start(name: str, *, env: dict[str, str] | None = None) -> Worker:
        work_dir = tmp_path / name
        work_dir.mkdir()
        log_path = work_dir / "worker.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "gitlab_core",
                    "worker",
                    "--concurrency=1",
                    "--loglevel=INFO",
                    "--without-mingle",
                    "--without-gossip",
                    "--without-heartbeat",
                    f"--hostname={name}-{os.getpid()}@%h",
                ],
                cwd=Path(django_settings.BASE_DIR),
                env=child_environment(work_dir, env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Its own process group, so that the test can kill the worker and its
                # pool child together without touching pytest.
                start_new_session=True,
            )
        worker = Worker(name=name, process=process, log_path=log_path)
        workers.append(worker)
        _wait(lambda: " ready." in worker.log() or process.poll() is not None, timeout=30, what=name, log=worker.log)
        assert process.poll() is None, worker.log()
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture
def pusher(db):
    """A maintainer of ``acme/svc`` and the skopeo credentials of their token."""
    user = make_user("pusher")
    project = make_project(make_group("acme"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    return project, f"pusher:{make_token(user, scopes=['api'])}"


def _gone(repository: ContainerRepository) -> Callable[[], bool]:
    return lambda: not ContainerRepository.objects.filter(pk=repository.pk).exists()


def test_celery_worker_deletes_a_scheduled_repository_end_to_end(registry, redis_url, start_worker, pusher, tmp_path):
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "latest"])
    schedule(repository)
    worker = start_worker("worker")

    # What beat sends every 5 minutes, sent once through the real broker.
    send(redis_url, SCHEDULE_TASK)

    _wait(_gone(repository), timeout=DEADLINE, what="the worker to delete the repository", log=worker.log)
    assert registry_tags(registry, creds, "acme/svc/app") == []
    _wait(lambda: task_results(worker.log(), DELETE_TASK), timeout=10, what="the task result", log=worker.log)
    assert task_results(worker.log(), DELETE_TASK) == ["'deleted'"]


def test_worker_whose_row_removal_fails_records_a_failed_attempt(registry, redis_url, start_worker, pusher, tmp_path):
    """A trigger (committed, so the worker's connection meets it) refuses the DELETE of
    the row after the worker removed the tags from the registry."""
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "latest"])
    schedule(repository)
    worker = start_worker("worker")

    with db_faults.refused_deletes("container_repositories"):
        send(redis_url, SCHEDULE_TASK)
        _wait(lambda: task_results(worker.log(), DELETE_TASK), timeout=DEADLINE, what="the task", log=worker.log)

    assert task_results(worker.log(), DELETE_TASK) == ["'rescheduled'"]
    assert registry_tags(registry, creds, "acme/svc/app") == []
    repository.refresh_from_db()
    assert (repository.status, repository.failed_deletion_count) == (Status.DELETE_SCHEDULED, 1)
    assert repository.delete_started_at is None and db_faults.MESSAGE in repository.last_deletion_error
    assert repository.next_delete_attempt_at > timezone.now()


def test_worker_killed_mid_deletion_is_reset_and_a_new_worker_finishes(
    registry, redis_url, start_worker, pusher, tmp_path
):
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "v2"])
    schedule(repository)

    # A registry that accepts connections and never answers keeps the worker inside the
    # deletion, so that it can be killed there.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        silent.settimeout(DEADLINE)
        doomed = start_worker(
            "doomed",
            env={
                "REGISTRY_API_URL": f"http://127.0.0.1:{silent.getsockname()[1]}",
                "REGISTRY_REQUEST_TIMEOUT": "300",
            },
        )
        send(redis_url, SCHEDULE_TASK)
        # The worker connecting to the "registry" means it has claimed the repository
        # and is waiting for the registry's answer, mid-deletion.
        connection, _ = silent.accept()
        with connection:
            repository.refresh_from_db()
            assert repository.status == Status.DELETE_ONGOING, doomed.log()
            doomed.kill()
    assert doomed.process.returncode == -signal.SIGKILL

    repository.refresh_from_db()
    assert (repository.status, repository.failed_deletion_count) == (Status.DELETE_ONGOING, 0)
    assert registry_tags(registry, creds, "acme/svc/app") == ["v1", "v2"]

    rescuer = start_worker("rescuer")
    # Within 30 minutes the dead worker's claim stands: the periodic task leaves it alone.
    send(redis_url, SCHEDULE_TASK)
    _wait(lambda: task_results(rescuer.log(), SCHEDULE_TASK), timeout=DEADLINE, what="the first run", log=rescuer.log)
    assert task_results(rescuer.log(), SCHEDULE_TASK) == ["0"]
    repository.refresh_from_db()
    assert repository.status == Status.DELETE_ONGOING

    # Time is moved, not waited: the claim is now 31 minutes old.
    ContainerRepository.objects.filter(pk=repository.pk).update(
        delete_started_at=timezone.now() - dt.timedelta(minutes=31)
    )
    send(redis_url, SCHEDULE_TASK)

    _wait(_gone(repository), timeout=DEADLINE, what="the new worker to delete the repository", log=rescuer.log)
    assert registry_tags(registry, creds, "acme/svc/app") == []
    _wait(lambda: task_results(rescuer.log(), DELETE_TASK), timeout=10, what="the task result", log=rescuer.log)
    assert task_results(rescuer.log(), SCHEDULE_TASK) == ["0", "1"]
    assert task_results(rescuer.log(), DELETE_TASK) == ["'deleted'"]


def test_two_workers_racing_for_one_repository_delete_it_once(registry, redis_url, start_worker, pusher, tmp_path):
    project, creds = pusher
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "v2", "v3"])
    schedule(repository)
    workers = [start_worker("left"), start_worker("right")]
    # Both wait on the queue before anything is sent, so that the first two messages go
    # one to each worker and their claims race.
    _wait(lambda: blocked_consumers(redis_url) >= 2, timeout=30, what="both workers to consume")

    sends = 4
    for _ in range(sends):
        send(redis_url, DELETE_TASK, repository.pk)

    def results() -> list[str]:
        return [r for worker in workers for r in task_results(worker.log(), DELETE_TASK)]

    def logs() -> str:
        return "\n".join(f"--- {w.name} ---\n{w.log()}" for w in workers)

    _wait(lambda: len(results()) == sends, timeout=DEADLINE, what="every task to finish", log=logs)
    assert sorted(results()) == ["'deleted'"] + ["'skipped'"] * (sends - 1), logs()
    assert all(task_results(w.log(), DELETE_TASK) for w in workers), f"one worker took every message\n{logs()}"
    assert not ContainerRepository.objects.filter(pk=repository.pk).exists()
    assert registry_tags(registry, creds, "acme/svc/app") == []
