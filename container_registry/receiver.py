"""``POST /api/v4/container_registry_event/events``: the registry's notifications.

One decision function, ``receive``, answers a delivery from its method, ``Authorization``
header, content type and body. Two doors lead to it:

* ``registry_events``, the Django view (the test client, ``runserver``, any server);
* ``answer_environ``, the same endpoint behind a bare WSGI door (``gitlab_core.doors``)
  that ``gitlab_core.wsgi`` opens for this path before Django's request handling: the
  registry posts one event per request and waits for each answer, and middleware, URL
  resolution and the request and response objects were most of an event's cost.

Answers: 405 for another method, 401 without the configured secret (and always when
none is configured), 415 for another content type, 400 for a body the registry would
never send (``event_envelopes.parse_envelope``), 503 when the database is unavailable (the
registry retries, and event ids make the retry apply each event once), else 200 with an
empty body. Events about unknown projects or repositories being deleted are acknowledged
with 200 (see ``container_registry.events``).
"""

from __future__ import annotations

import hmac
import json
import logging
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

from container_registry import event_envelopes, events
from container_registry.registry_activity import note_event_received
from gitlab_core import doors, metrics

logger = logging.getLogger(__name__)

PATH = "/api/v4/container_registry_event/events"
CONTENT_TYPES = frozenset({"application/vnd.docker.distribution.events.v1+json", "application/json"})


def receive(method: str, authorization: str, content_type: str, body: bytes) -> tuple[int, dict | None]:
    """The status and JSON body (None: empty) answering one delivery; its events are
    counted in ``registry_events_total`` (a refused delivery as one ``rejected``)."""
    status, payload, outcome = _receive(method, authorization, content_type, body)
    if outcome is not None:
        for key, count in outcome.by_action.items():
            _COUNTED[key].inc(count)
    else:
        _REFUSED[status].inc()
    return status, payload


# One child per (action, outcome) and per refusal, looked up once (``labels()`` costs
# 2.7 us a call); the outcome's names are the metric's results in the singular.
_RESULTS = {events.APPLIED: "applied", events.DUPLICATE: "duplicate", events.IGNORED: "ignored"}
_COUNTED = {
    (action, result): metrics.REGISTRY_EVENTS.labels(action, name)
    for action in sorted(event_envelopes.ACTIONS)
    for result, name in _RESULTS.items()
}
_REFUSED = {
    status: metrics.REGISTRY_EVENTS.labels("unknown", "error" if status == 503 else "rejected")
    for status in (400, 401, 405, 413, 415, 503)
}


def _receive(method: str, authorization: str, content_type: str, body: bytes):
    if method != "POST":
        return 405, {"message": "405 Method Not Allowed"}, None
    secret = settings.REGISTRY_NOTIFICATION_SECRET
    if not secret or not authorization or not hmac.compare_digest(authorization.encode(), secret.encode()):
        return 401, {"message": "401 Unauthorized"}, None
    # Parameters such as "; charset=utf-8" do not change what the body is.
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        return 415, {"error": f"The content type {media_type or '(none)'} is not supported"}, None
    try:
        parsed = event_envelopes.parse_envelope(body)
    except event_envelopes.InvalidEnvelope as exc:
        return 400, {"message": str(exc)}, None
    try:
        outcome = events.apply_events(parsed)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("registry events not applied, database unavailable: %s", exc.__class__.__name__)
        return 503, {"message": "503 Service Unavailable"}, None
    note_event_received()
    return 200, None, outcome


@csrf_exempt
def registry_events(request):
    try:
        body = request.body
    except RequestDataTooBig:
        _REFUSED[413].inc()
        status, payload = 413, {"message": f"413 {HTTPStatus(413).phrase}"}
    else:
        status, payload = receive(
            request.method,
            # META, not request.headers: that builds a dict of every header on first use.
            request.META.get("HTTP_AUTHORIZATION", ""),
            request.META.get("CONTENT_TYPE", ""),
            body,
        )
    return HttpResponse(b"" if payload is None else json.dumps(payload), status=status, content_type="application/json")


def _max_body_bytes() -> int:
    # Django's own limit for request bodies, so both doors refuse the same bodies.
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2**31


def answer_environ(environ) -> doors.Answer:
    """``registry_events`` for ``gitlab_core.doors`` (see the module docstring)."""
    body = doors.read_body(environ, _max_body_bytes())
    if body is None:
        _REFUSED[413].inc()
        return doors.json_answer(413, {"message": f"413 {HTTPStatus(413).phrase}"})
    status, payload = receive(
        environ.get("REQUEST_METHOD", ""),
        environ.get("HTTP_AUTHORIZATION", ""),
        environ.get("CONTENT_TYPE", ""),
        body,
    )
    return doors.json_answer(status, payload)
