"""Request ids and JSON logs through the real processes: granian (``scripts/web.sh``),
a Celery worker on Redis, and Celery beat.

The server trusts 127.0.0.2 as its proxy; the tests connect from 127.0.0.2 (the proxy)
or 127.0.0.1 (a client talking to the server directly).
"""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache

from container_registry.api_cleanup import bulk_delete_lease_key
from container_registry.models import ContainerRepository
from projects.models import AccessLevel, ProjectMember
from tests_support.celery_live import child_environment, live_celery
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import wait_until
from tests_support.web_server import granian

pytestmark = pytest.mark.django_db(transaction=True)

PROXY = "127.0.0.2"
CLIENT = "127.0.0.1"
GENERATED = re.compile(r"[0-9a-f]{32}")
# Celery's own text format ("[2026-01-01 10:00:00,000: INFO/MainProcess] ..."), which
# drops the records' extra fields.
CELERY_TEXT_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d [\d:,]+: [A-Z]+/")


def request(base: str, method: str, path: str, *, peer: str, headers: dict[str, str] | None = None):
    """One request from ``peer`` (a loopback address) to the server at ``base``."""
    host, port = base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10, source_address=(peer, 0))
    try:
        connection.request(method, path, body=b"" if method != "GET" else None, headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def lines_with(text: str, request_id: str, logger: str | None = None) -> list[dict]:
    return [
        line for line in json_lines(text) if line.get("request_id") == request_id and logger in (None, line["logger"])
    ]


@pytest.fixture
def web(tmp_path):
    with granian(tmp_path, {"TRUSTED_PROXIES": PROXY}) as server:
        yield server


PATHS = [
    ("GET", "/-/health"),  # Django
    ("GET", "/api/v4/no-such-resource"),  # Django, which logs the 404 itself
    ("GET", "/jwt/auth?service=container_registry"),  # the realm's door
    ("POST", "/api/v4/container_registry_event/events"),  # the receiver's door (no secret: 401)
]


def test_the_server_gives_every_request_an_id_and_logs_it(web):
    for method, path in PATHS:
        trusted = f"lb-{uuid.uuid4().hex[:12]}"
        from_proxy = request(web.base, method, path, peer=PROXY, headers={"X-Request-Id": trusted})
        from_client = request(web.base, method, path, peer=CLIENT, headers={"X-Request-Id": "chosen-by-client"})
        without = request(web.base, method, path, peer=PROXY)
        assert from_proxy.status == from_client.status == without.status < 500, path
        # Accepted from the trusted proxy, ignored from anyone else, generated when absent.
        assert from_proxy.getheader("X-Request-Id") == trusted, path
        generated = [from_client.getheader("X-Request-Id"), without.getheader("X-Request-Id")]
        assert all(GENERATED.fullmatch(value) for value in generated), (path, generated)
        assert generated[0] != generated[1]
        for value in (trusted, *generated):
            access = wait_until(
                lambda value=value: [
                    line for line in lines_with(web.log(), value) if line["logger"] == "granian.access"
                ],
                timeout=10,
                message=f"the access log line of {value}",
            )
            assert len(access) == 1 and path.split("?")[0] in access[0]["message"], (path, access)
    assert "chosen-by-client" not in web.log()


def test_a_forged_id_from_the_proxy_cannot_split_a_log_line(web):
    forged = 'x", "level": "error"}\\n{"message": "forged'
    response = request(web.base, "GET", "/no-such-page", peer=PROXY, headers={"X-Request-Id": forged})
    assert GENERATED.fullmatch(response.getheader("X-Request-Id"))
    loggers = {"django.request", "granian.access"}  # Django's 404 warning and the access line
    wait_until(
        lambda: {line["logger"] for line in lines_with(web.log(), response.getheader("X-Request-Id"))} >= loggers,
        timeout=10,
        message=f"the request's lines from {loggers}",
    )
    assert "forged" not in web.log()


@pytest.mark.e2e
@pytest.mark.celery_live
def test_the_worker_logs_json_with_the_id_of_the_api_request_that_enqueued_the_task(registry, tmp_path):
    user = make_user("cleaner")
    project = make_project(make_group(f"logs-{uuid.uuid4().hex[:8]}"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    repository = ContainerRepository.objects.create(project=project, name="app")
    token = make_token(user, scopes=["api"])
    cache.delete(bulk_delete_lease_key(repository.pk))  # left by an earlier run with the same id
    trusted = f"api-{uuid.uuid4().hex[:12]}"

    with live_celery() as celery, granian(tmp_path, {"TRUSTED_PROXIES": PROXY, "LOG_LEVEL": "INFO"}) as web:
        response = request(
            web.base,
            "DELETE",
            f"/api/v4/projects/{project.pk}/registry/repositories/{repository.pk}/tags?name_regex_delete=.%2A",
            peer=PROXY,
            headers={"PRIVATE-TOKEN": token, "X-Request-Id": trusted},
        )
        assert response.status == 202, web.log()
        assert response.getheader("X-Request-Id") == trusted

        def task_finished() -> list[dict]:
            lines = lines_with(celery.log(), trusted, "celery.app.trace")
            return [line for line in lines if "succeeded" in line["message"]]

        try:
            wait_until(task_finished, timeout=60, message="the task's success line")
        except AssertionError:
            pytest.fail(f"the task did not log its success with the request id:\n{celery.log()}")
        assert lines_with(web.log(), trusted, "granian.access"), web.log()
        log = celery.log()

    [deletion] = [line for line in lines_with(log, trusted) if line["message"] == "bulk tag deletion"]
    # The fields the service passes with ``extra=``, which Celery's text format dropped.
    assert deletion["container_repository_id"] == repository.pk
    assert deletion["user_id"] == user.pk
    assert deletion["level"] == "info" and deletion["logger"] == "container_registry.cleanup"
    [succeeded] = lines_with(log, trusted, "celery.app.trace")
    assert succeeded["data"]["name"] == "container_registry.cleanup_tags"
    # The worker logged in JSON only: no line in Celery's own format.
    assert not [line for line in log.splitlines() if CELERY_TEXT_LINE.match(line)], log
    assert [line for line in json_lines(log) if line["logger"] == "celery.apps.worker" and "ready" in line["message"]]


def test_beat_logs_json(tmp_path):
    env = child_environment(tmp_path, {"LOG_LEVEL": "INFO"})
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "gitlab_core",
            "beat",
            "--loglevel=INFO",
            f"--schedule={tmp_path / 'schedule'}",
        ],
        env=env,
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,  # the start-up banner, not a log
        stderr=(tmp_path / "beat.log").open("wb"),
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: "Starting" in (tmp_path / "beat.log").read_text() or process.poll() is not None,
            timeout=30,
            message="beat starting",
        )
        time.sleep(0.5)
    finally:
        process.terminate()
        process.wait(timeout=15)
    lines = (tmp_path / "beat.log").read_text().splitlines()
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"] == "celery.beat" and "Starting" in r["message"] for r in records), lines
