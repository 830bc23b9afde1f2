"""Fixtures of the registry integration tests: captured envelopes and a receiver client."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import pytest
from django.core import signals
from django.db import close_old_connections

from tests_support.factories import make_group, make_project, make_user

FIXTURES = Path(__file__).parent / "fixtures" / "registry-2.8"
EVENTS_URL = "/api/v4/container_registry_event/events"
EVENTS_CONTENT_TYPE = "application/vnd.docker.distribution.events.v1+json"
SECRET = "notify-secret-for-tests"


def envelope(name: str) -> bytes:
    """A captured envelope, byte for byte (``sequences/...`` paths allowed)."""
    return (FIXTURES / name).read_bytes()


def envelope_with(name: str, **changes) -> bytes:
    """A captured envelope with top-level event fields or ``target`` fields replaced."""
    document = json.loads(envelope(name))
    event = document["events"][0]
    for key, value in changes.items():
        if key in event:
            event[key] = value
        else:
            event["target"][key] = value
    return json.dumps(document).encode()


@pytest.fixture
def captured_world(db):
    """The project the captures were made against: ``group/project`` (images ``image``)
    and ``group/other`` (the mount target)."""
    owner = make_user("capture-owner")
    group = make_group("group", owner=owner)
    return {
        "owner": owner,
        "project": make_project(group, "project", creator=owner),
        "other": make_project(group, "other", creator=owner),
    }


@pytest.fixture
def unreachable_registry(settings):
    """A registry URL nothing listens on (connection refused at once)."""
    from tests_support.registry import free_port

    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"
    return settings.REGISTRY_API_URL


@dataclass
class WsgiResponse:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    def json(self):
        return json.loads(self.content)


def call_wsgi(method: str, path: str, body: bytes = b"", **environ) -> WsgiResponse:
    """One request through ``gitlab_core.wsgi.application``, the application the
    production server runs (the test client and live server use Django's handler only,
    so they never take the receiver's door in front of Django). As Django's test client
    does, the request signals do not close the test's database connection."""
    from gitlab_core.wsgi import application

    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body)}
    env["CONTENT_LENGTH"] = str(len(body))
    env.update(environ)
    setup_testing_defaults(env)
    response = WsgiResponse(0)

    def start_response(status, headers, exc_info=None):
        response.status_code = int(status.split()[0])
        response.headers = dict(headers)

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = application(env, start_response)
        response.content = b"".join(chunks)
        getattr(chunks, "close", lambda: None)()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return response


@pytest.fixture(params=["django-view", "wsgi-door"])
def post_events(request, client, settings, unreachable_registry):
    """Posts an envelope through the Django view, then (second run of each test)
    through the WSGI door that production servers use for this path."""
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET

    def post(body: bytes, *, secret: str | None = SECRET, content_type: str = EVENTS_CONTENT_TYPE):
        headers = {"HTTP_AUTHORIZATION": secret} if secret is not None else {}
        if request.param == "wsgi-door":
            return call_wsgi("POST", EVENTS_URL, body, CONTENT_TYPE=content_type, **headers)
        return client.post(EVENTS_URL, data=body, content_type=content_type, **headers)

    return post


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Every test builds several users; the production hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
