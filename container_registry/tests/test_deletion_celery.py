"""Repository deletion through a real Celery worker on a real Redis broker, against the
real registry: the periodic task enqueues the deletion, the worker performs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from container_registry.models import ContainerRepository
from container_registry.tests.test_deletion_e2e import _database_url, push, registry_tags
from gitlab_core.celery import app
from projects.models import AccessLevel, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import free_port

pytestmark = [pytest.mark.celery_live, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Status = ContainerRepository.Status
DEADLINE = 60


def _wait(predicate, *, timeout: float, what: str, log=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}\n{log() if log else ''}")


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server on a free loopback port (no persistence)."""
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
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001  (any failure means "not up yet")
        return False


@pytest.fixture
def celery_worker_process(redis_url, registry, settings, tmp_path):
    """A real ``celery worker`` process on the Redis broker, sharing the test database and
    pointed at the test registry."""
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "CELERY_BROKER_URL": redis_url,
        "DATABASE_URL": _database_url(),
        "REGISTRY_API_URL": settings.REGISTRY_API_URL,
        "REGISTRY_HOST_PORT": settings.REGISTRY_HOST_PORT,
        "REGISTRY_KEY_PATH": settings.REGISTRY_KEY_PATH,
        "VAR_DIR": str(tmp_path / "worker-var"),
        "DJANGO_SETTINGS_MODULE": "gitlab_core.settings",
    }
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "gitlab_core",
                "worker",
                "--pool",
                "solo",
                "--loglevel",
                "INFO",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
            ],
            cwd=Path(django_settings.BASE_DIR),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def read_log() -> str:
        return log_path.read_text(errors="replace")

    try:
        _wait(lambda: "ready" in read_log() or worker.poll() is not None, timeout=30, what="worker", log=read_log)
        assert worker.poll() is None, read_log()
        yield read_log
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def test_celery_worker_deletes_a_scheduled_repository_end_to_end(registry, redis_url, celery_worker_process, tmp_path):
    user = make_user("pusher")
    project = make_project(make_group("acme"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    creds = f"pusher:{make_token(user, scopes=['api'])}"
    repository = push(registry, tmp_path, project, creds, "app", ["v1", "latest"])
    ContainerRepository.objects.filter(pk=repository.pk).update(
        status=Status.DELETE_SCHEDULED, status_updated_at=timezone.now()
    )

    # What beat sends every 5 minutes, sent once through the real broker.
    with app.connection_for_write(redis_url) as connection:
        app.send_task("container_registry.schedule_repository_deletions", connection=connection)

    _wait(
        lambda: not ContainerRepository.objects.filter(pk=repository.pk).exists(),
        timeout=DEADLINE,
        what="the worker to delete the repository",
        log=celery_worker_process,
    )
    assert registry_tags(registry, creds, "acme/svc/app") == []
    log = celery_worker_process()
    assert "container_registry.delete_repository" in log
    assert "'deleted'" in log
