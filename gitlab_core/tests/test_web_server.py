"""The production web server (``scripts/web.sh``: granian) serving the whole application.

The rest of the suite talks to Django's test client or live server, which never take the
WSGI doors of ``gitlab_core.wsgi`` and pass ``PATH_INFO`` as Django's own server does.
Here a real granian process serves the test database: the token realm and the event
receiver through their doors, and the API with an encoded project path, which granian
decodes before the application sees it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import jwt
import pytest
import requests
from cryptography import x509

from container_registry.models import ContainerRepository, RegistryEvent
from container_registry.tests.conftest import envelope_with
from tests_support.celery_live import child_environment
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


@contextlib.contextmanager
def running_web(tmp_path, settings, registry_keys, extra_env: dict[str, str] | None = None):
    """``scripts/web.sh`` serving the test database; yields its base URL."""
    if not (ROOT / ".venv" / "bin" / "granian").exists() or shutil.which("nproc") is None:
        pytest.fail("scripts/web.sh needs granian in .venv (pip install -r requirements.txt)")
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)
    settings.REGISTRY_NOTIFICATION_SECRET = secrets.token_urlsafe(16)
    port = free_port()
    env = child_environment(
        tmp_path,
        {
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "WEB_THREADS": "2",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            # Nothing listens there: a push event for a repository without a row is trusted.
            "REGISTRY_API_URL": f"http://127.0.0.1:{free_port()}",
            **(extra_env or {}),
        },
    )
    log = (tmp_path / "web.log").open("wb")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "web.sh")], env=env, stdout=log, stderr=log, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"

    def healthy():
        if process.poll() is not None:
            pytest.fail(f"web server exited: {(tmp_path / 'web.log').read_text()[-2000:]}")
        try:
            return requests.get(f"{base}/-/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(healthy, timeout=30, message="granian answering /-/health")
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


@pytest.fixture
def web(tmp_path, settings, registry_keys):
    with running_web(tmp_path, settings, registry_keys) as base:
        yield base


@pytest.fixture
def world(db):
    owner = make_user("webowner")
    project = make_project(make_group("acme", owner=owner), "svc", creator=owner)
    return {"owner": owner, "project": project, "token": make_token(owner)}


def _basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


def test_the_realm_signs_tokens_the_registry_certificate_verifies(web, world, registry_keys):
    query = {"service": "container_registry", "scope": "repository:acme/svc/img:pull,push"}
    headers = {"Authorization": _basic("webowner", world["token"])}
    first = requests.get(f"{web}/jwt/auth", params=query, headers=headers, timeout=10)
    again = requests.get(f"{web}/jwt/auth", params=query, headers=headers, timeout=10)

    certificate = x509.load_pem_x509_certificate(registry_keys.cert_path.read_bytes())
    for response in (first, again):
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"
        claims = jwt.decode(
            response.json()["token"],
            certificate.public_key(),
            algorithms=["RS256"],
            audience="container_registry",
            issuer="gitlab-issuer",
        )
        assert claims["access"][0]["actions"] == ["pull", "push"]
        assert claims["sub"] == "webowner"
    # The granted push created the repository row, in the database the server uses.
    assert ContainerRepository.objects.filter(project=world["project"], name="img").exists()

    refused = requests.get(
        f"{web}/jwt/auth", params=query, headers={"Authorization": _basic("webowner", "wrong")}, timeout=10
    )
    assert refused.status_code == 401
    assert refused.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert requests.post(f"{web}/jwt/auth", params=query, timeout=10).status_code == 404


def test_the_receiver_applies_an_event_once_and_refuses_a_wrong_secret(web, world, settings):
    ContainerRepository.objects.create(project=world["project"], name="img")
    body = envelope_with("push-manifest-oci.json", repository="acme/svc/img", tag="v1")
    url = f"{web}/api/v4/container_registry_event/events"
    headers = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}

    assert requests.post(url, data=body, headers={**headers, "Authorization": "nope"}, timeout=10).status_code == 401
    for _ in range(2):  # the registry re-sends an event it got no answer for
        response = requests.post(
            url, data=body, headers={**headers, "Authorization": settings.REGISTRY_NOTIFICATION_SECRET}, timeout=10
        )
        assert response.status_code == 200
    assert ContainerRepository.objects.get(project=world["project"], name="img").push_count == 1
    assert RegistryEvent.objects.count() == 1


@pytest.mark.parametrize(
    "target", [{"tag": "v1"}, {"repository": "acme/svc/Not Valid", "tag": "v1"}], ids=["no-repository", "invalid-path"]
)
def test_an_event_naming_no_valid_repository_is_skipped_and_the_rest_of_the_envelope_counted(
    web, world, settings, tmp_path, target
):
    for name in ("one", "two"):
        ContainerRepository.objects.create(project=world["project"], name=name)
    first, last = (
        json.loads(envelope_with("push-manifest-oci.json", id=f"event-{name}", repository=f"acme/svc/{name}"))
        for name in ("one", "two")
    )
    middle = {**first["events"][0], "id": "event-skipped", "target": target}
    body = json.dumps({"events": [first["events"][0], middle, last["events"][0]]})
    url = f"{web}/api/v4/container_registry_event/events"
    headers = {
        "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        "Authorization": settings.REGISTRY_NOTIFICATION_SECRET,
    }

    for _delivery in range(2):  # the second is the registry re-sending it: nothing more counts
        response = requests.post(url, data=body, headers=headers, timeout=10)
        assert (response.status_code, response.content) == (200, b"")
    counts = dict(ContainerRepository.objects.filter(project=world["project"]).values_list("name", "push_count"))
    assert counts == {"one": 1, "two": 1}
    assert sorted(RegistryEvent.objects.values_list("event_id", flat=True)) == ["event-one", "event-two"]

    lines = [json.loads(line) for line in (tmp_path / "web.log").read_text().splitlines() if line.startswith("{")]
    skipped = [line for line in lines if line["message"].startswith("registry event skipped")]
    assert [(line["event_id"], line["event_index"], line["level"]) for line in skipped] == [
        ("event-skipped", 1, "warning")
    ] * 2
    assert all(
        settings.REGISTRY_NOTIFICATION_SECRET not in line for line in (tmp_path / "web.log").read_text().splitlines()
    )


def test_the_api_finds_a_project_by_its_encoded_path(web, world):
    response = requests.get(f"{web}/api/v4/projects/acme%2Fsvc", headers={"PRIVATE-TOKEN": world["token"]}, timeout=10)
    assert response.status_code == 200
    assert response.json()["path_with_namespace"] == "acme/svc"
    # A path that names no project is answered by its route, as under any other server.
    for missing in ("acme%2Fnone", "acme%2Fnone/registry/repositories", "acme%2Fnone%2Fdeeper/members"):
        response = requests.get(
            f"{web}/api/v4/projects/{missing}", headers={"PRIVATE-TOKEN": world["token"]}, timeout=10
        )
        assert response.status_code == 404 and response.json() == {"message": "404 Project Not Found"}


BAN = {"AUTH_BAN_MAX_RETRY": "3", "AUTH_BAN_FIND_TIME": "180", "AUTH_BAN_TIME": "3600"}


def _realm(base: str, login: str, secret: str, forwarded: str) -> int:
    query = {"service": "container_registry", "scope": "repository:acme/svc/img:pull"}
    headers = {"Authorization": _basic(login, secret), "X-Forwarded-For": forwarded}
    return requests.get(f"{base}/jwt/auth", params=query, headers=headers, timeout=10).status_code


def test_forged_forwarded_for_from_an_untrusted_peer_neither_dodges_nor_places_a_ban(
    tmp_path, settings, registry_keys, world
):
    from gitlab_core.models import LoginFailures

    # The test client (127.0.0.1) is not one of the proxies.
    with running_web(tmp_path, settings, registry_keys, {**BAN, "TRUSTED_PROXIES": "10.0.0.0/8"}) as base:
        for forged in ("203.0.113.1", "203.0.113.2", "10.0.0.9, 203.0.113.3"):
            assert _realm(base, "webowner", "wrong", forged) == 401
        # Every failure was counted on the peer: a fresh forged address does not help.
        assert _realm(base, "webowner", world["token"], "203.0.113.4") == 403
    assert list(LoginFailures.objects.values_list("address", "login", "failures")) == [("127.0.0.1", "webowner", 3)]


def _access_lines(tmp_path) -> list[dict]:
    lines = [json.loads(line) for line in (tmp_path / "web.log").read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "granian.access" and "/jwt/auth" in line["message"]]


def test_behind_a_trusted_proxy_bans_are_per_real_client_in_the_ban_and_the_access_log(
    tmp_path, settings, registry_keys, world
):
    from gitlab_core.models import LoginFailures

    with running_web(tmp_path, settings, registry_keys, {**BAN, "TRUSTED_PROXIES": "127.0.0.1"}) as base:
        for _ in range(3):
            assert _realm(base, "WebOwner", "wrong", "203.0.113.7") == 401
        assert _realm(base, "webowner", world["token"], "203.0.113.7") == 403
        # A client writing an address before the proxy's entry is still the proxy's entry.
        assert _realm(base, "webowner", world["token"], "203.0.113.8, 203.0.113.7") == 403
        # Everyone else behind the same proxy signs in.
        assert _realm(base, "webowner", world["token"], "203.0.113.8") == 200
        assert _realm(base, "webowner", world["token"], "6.6.6.6, 203.0.113.9") == 200
        # The server writes an access line after its answer: wait for the last one.
        deadline = time.monotonic() + 10
        while len(_access_lines(tmp_path)) < 7 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert list(LoginFailures.objects.values_list("address", "login")) == [("203.0.113.7", "webowner")]

    lines = [json.loads(line) for line in (tmp_path / "web.log").read_text().splitlines() if line.startswith("{")]
    access = _access_lines(tmp_path)
    assert [line["message"].split(" ")[0] for line in access] == [
        *["203.0.113.7"] * 5,
        "203.0.113.8",
        "203.0.113.9",
    ]
    assert {line["peer_address"] for line in access} == {"127.0.0.1"}
    started = [line for line in lines if line["message"] == "login ban started"]
    assert [(line["client_address"], line["login"]) for line in started] == [("203.0.113.7", "webowner")]
