"""The registry's vendor and version as GitLab tells them, on the admin's front page too.

CNCF distribution 2.8 (the real one, ``gitlab_core/tests/test_health.py`` and the e2e
tests) announces no version. GitLab's own registry is not installed here: a stand-in
HTTP server on a real socket answers ``/v2/`` with the headers GitLab's registry sends.
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from container_registry.models import ContainerRepository, RegistryEvent
from container_registry.registry_info import registry_info, registry_status
from tests_support.factories import make_group, make_project, make_user
from tests_support.registry import free_port

GITLAB_HEADERS = {
    "Docker-Distribution-Api-Version": "registry/2.0",
    "Gitlab-Container-Registry-Version": "4.14.0-gitlab",
    "Gitlab-Container-Registry-Features": "tag_delete, online_migration",
    "Gitlab-Container-Registry-Database-Enabled": "true",
}


@contextlib.contextmanager
def stand_in_registry(headers: dict[str, str]):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            self.send_response(200 if self.path == "/v2/" else 404)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def keys(settings, registry_keys):
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)


def test_gitlab_registry_is_told_by_its_version_header(keys, settings):
    with stand_in_registry(GITLAB_HEADERS) as url:
        settings.REGISTRY_API_URL = url
        info = registry_info()
    assert (info.vendor, info.version) == ("gitlab", "4.14.0-gitlab")
    assert info.features == ["tag_delete", "online_migration"]
    assert info.database_enabled is True
    assert info.api_version == "registry/2.0"


def test_any_other_registry_is_other_without_a_version(keys, settings):
    with stand_in_registry({"Docker-Distribution-Api-Version": "registry/2.0"}) as url:
        settings.REGISTRY_API_URL = url
        info = registry_info()
    assert (info.vendor, info.version, info.features, info.database_enabled) == ("other", "", [], False)


def test_a_registry_that_does_not_answer_is_reported_not_raised(keys, settings, db):
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"
    status = registry_status()
    assert status.info is None
    assert "REGISTRY_API_URL" in status.error
    assert status.as_dict() == {"last_event_at": None}


@pytest.fixture
def admin_client(client, db):
    client.force_login(make_user("root", admin=True))
    return client


def test_the_admin_front_page_shows_the_registry_and_its_last_event(keys, settings, admin_client):
    project = make_project(make_group("acme", owner=make_user("o")), "svc")
    repository = ContainerRepository.objects.create(project=project, name="img")
    event = RegistryEvent.objects.create(event_id="e-1", action="push", repository=repository.path, tag="v1")
    with stand_in_registry(GITLAB_HEADERS) as url:
        settings.REGISTRY_API_URL = url
        page = admin_client.get("/admin/").content.decode()
    assert "Container registry" in page
    assert "<td>gitlab</td>" in page
    assert "<td>4.14.0-gitlab</td>" in page
    assert "tag_delete, online_migration" in page
    assert event.received_at.strftime("%Y-%m-%d %H:%M:%S") in page

    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"
    down = admin_client.get("/admin/").content.decode()
    assert "Not reachable" in down and "REGISTRY_API_URL" in down
    assert event.received_at.strftime("%Y-%m-%d %H:%M:%S") in down


def test_readiness_does_not_ask_a_registry_that_is_switched_off(keys, settings, client, db):
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"
    assert client.get("/-/readiness").json()["checks"]["registry"]["status"] == "failed"
    settings.REGISTRY_ENABLED = False
    assert client.get("/-/readiness").json()["checks"]["registry"] == {"status": "ok", "enabled": False}
