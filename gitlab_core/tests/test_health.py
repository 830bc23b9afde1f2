"""``/-/liveness`` and ``/-/readiness`` through the production server (``scripts/web.sh``,
granian), with the real registry, each dependency taken down in turn (a closed port:
connection refused), and dependencies that accept a connection and never answer."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import requests

from container_registry.models import ContainerRepository, RegistryEvent
from tests_support.factories import make_group, make_project, make_user
from tests_support.registry import free_port
from tests_support.web_server import granian

pytestmark = pytest.mark.django_db(transaction=True)

CHECKS = ["database", "cache", "broker", "registry", "signing_key", "migrations"]


@pytest.fixture
def keys(settings, registry_keys):
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)
    return registry_keys


def _readiness(base: str, **headers) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.get(f"{base}/-/readiness", headers=headers, timeout=10)
    return response, time.monotonic() - started


def _failed(body: dict) -> set[str]:
    return {name for name, check in body["checks"].items() if check["status"] != "ok"}


def test_ready_with_every_dependency_up_whatever_the_host_header(registry, keys, tmp_path):
    project = make_project(make_group("acme", owner=make_user("o")), "svc")
    repository = ContainerRepository.objects.create(project=project, name="img")
    RegistryEvent.objects.create(event_id="e-1", action="push", repository=repository.path, tag="v1")
    last = RegistryEvent.objects.create(event_id="e-2", action="pull", repository=repository.path)

    with granian(tmp_path) as web:
        # A load balancer probing by address: granian serves ALLOWED_HOSTS=127.0.0.1 only.
        response, _elapsed = _readiness(web.base, Host="10.1.2.3")
        live = requests.get(f"{web.base}/-/liveness", headers={"Host": "10.1.2.3"}, timeout=5)
        django_page = requests.get(f"{web.base}/-/health", headers={"Host": "10.1.2.3"}, timeout=5)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert list(body["checks"]) == CHECKS
    assert _failed(body) == set()
    registry_check = body["checks"]["registry"]
    # distribution 2.8 announces no version: GitLab calls such a registry "other".
    assert registry_check["vendor"] == "other"
    assert registry_check["version"] == ""
    assert registry_check["api_version"] == "registry/2.0"
    assert registry_check["last_event_at"] == last.received_at.isoformat()
    assert body["checks"]["signing_key"]["algorithm"] == "RS256"
    assert response.headers["Cache-Control"] == "no-store"
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert django_page.status_code == 400  # the Django views check the Host header


def _closed_port_url(scheme: str, path: str = "") -> str:
    return f"{scheme}://127.0.0.1:{free_port()}{path}"


@pytest.mark.parametrize(
    ("down", "env", "failing", "hint"),
    [
        (
            "database",
            {"DATABASE_URL": f"postgres://postgres@127.0.0.1:{free_port()}/registry"},
            {"database", "migrations"},
            "DATABASE_URL",
        ),
        (
            "redis",
            {"CACHE_URL": _closed_port_url("redis", "/1"), "CELERY_BROKER_URL": _closed_port_url("redis", "/0")},
            {"cache", "broker"},
            "CACHE_URL",
        ),
        ("registry", {"REGISTRY_API_URL": _closed_port_url("http")}, {"registry"}, "REGISTRY_API_URL"),
    ],
)
def test_a_dependency_down_makes_readiness_fail_and_say_what_to_do(registry, keys, tmp_path, down, env, failing, hint):
    with granian(tmp_path, env) as web:
        response, elapsed = _readiness(web.base)
        # The underlying error is for the monitoring addresses only (127.0.0.1 is one).
        with_detail = response.json()
        hidden, _ = _readiness(web.base, **{"X-Forwarded-For": "203.0.113.9"})
        live = requests.get(f"{web.base}/-/liveness", timeout=5)
    with granian(tmp_path, {**env, "MONITORING_ALLOWED_IPS": "10.0.0.0/8"}) as web:
        outsider, _ = _readiness(web.base)

    assert response.status_code == 503, response.text
    assert with_detail["status"] == "failed"
    failed = _failed(with_detail)
    if down == "database":
        # The default cache is a database table: it goes too (a Redis cache stays up).
        failed.discard("cache")
    assert failed == failing, with_detail
    first = with_detail["checks"][min(failing, key=CHECKS.index)]
    assert hint in first["message"]
    assert first["detail"]
    assert elapsed < 2
    # X-Forwarded-For is not believed without TRUSTED_PROXIES: the peer is 127.0.0.1.
    assert all("detail" in hidden.json()["checks"][name] for name in failing)
    assert outsider.status_code == 503
    assert all("detail" not in check for check in outsider.json()["checks"].values())
    assert all(check["message"] for check in outsider.json()["checks"].values() if check["status"] != "ok")
    assert live.status_code == 200  # a dead dependency does not get the web server restarted


@contextlib.contextmanager
def hanging_port():
    """A port that accepts connections and never answers nor closes them: a real hang."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def test_readiness_answers_within_two_seconds_while_dependencies_hang(keys, tmp_path):
    with hanging_port() as port:
        env = {
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{port}/registry",
            "CACHE_URL": f"redis://127.0.0.1:{port}/1",
            "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/0",
            "REGISTRY_API_URL": f"http://127.0.0.1:{port}",
        }
        with granian(tmp_path, env) as web:
            first, first_elapsed = _readiness(web.base)
            # The checks of the first probe still hang: the second neither waits for them
            # nor starts more.
            second, second_elapsed = _readiness(web.base)
            started = time.monotonic()
            live = requests.get(f"{web.base}/-/liveness", timeout=5)
            live_elapsed = time.monotonic() - started

    for response, elapsed in ((first, first_elapsed), (second, second_elapsed)):
        assert response.status_code == 503
        assert elapsed < 2, elapsed
        assert {"database", "cache", "broker", "registry", "migrations"} <= _failed(response.json())
    assert "no answer within" in first.json()["checks"]["database"]["message"]
    assert "earlier probe" in second.json()["checks"]["database"]["message"]
    assert first.json()["checks"]["signing_key"]["status"] == "ok"
    assert live.status_code == 200 and live_elapsed < 1
