"""Fixtures of the registry integration tests: captured envelopes and a receiver client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests_support.factories import make_group, make_project, make_user
from tests_support.wsgi import call_wsgi

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


@pytest.fixture(params=["django-view", "wsgi-door"])
def post_events(request, client, settings, unreachable_registry):
    """Posts an envelope through the Django view, then (second run of each test)
    through the WSGI door that production servers use for this path."""
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    if request.param == "wsgi-door":
        # Loaded before the test's ``caplog`` (a later fixture): ``get_wsgi_application``
        # sets Django up again, which configures logging anew and would drop its handler.
        import gitlab_core.wsgi  # noqa: F401

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
