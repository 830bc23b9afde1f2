"""The request id: chosen per request, echoed, carried by log records and task messages.

Through Django's test client (the middleware) and ``gitlab_core.wsgi.application`` (the
two doors). The real server, worker and beat are in ``test_request_id_live``.
"""

from __future__ import annotations

import json
import logging
import re

import pytest

from gitlab_core import request_id
from gitlab_core.celery import receive_request_id, send_request_id
from gitlab_core.logging import JsonFormatter
from gitlab_core.request_id import RequestIdFilter
from tests_support.wsgi import call_wsgi

GENERATED = re.compile(r"[0-9a-f]{32}")
PROXY = "10.0.0.7"


def through_django(client, header: str | None, peer: str):
    extra = {"REMOTE_ADDR": peer}
    if header is not None:
        extra["HTTP_X_REQUEST_ID"] = header
    return client.get("/-/health", **extra)


def through_realm_door(client, header: str | None, peer: str):
    extra = {"REMOTE_ADDR": peer}
    if header is not None:
        extra["HTTP_X_REQUEST_ID"] = header
    return call_wsgi("GET", "/jwt/auth", QUERY_STRING="service=container_registry", **extra)


def through_receiver_door(client, header: str | None, peer: str):
    extra = {"REMOTE_ADDR": peer}
    if header is not None:
        extra["HTTP_X_REQUEST_ID"] = header
    return call_wsgi("POST", "/api/v4/container_registry_event/events", b"{}", **extra)


ENTRANCES = pytest.mark.parametrize(
    "send", [through_django, through_realm_door, through_receiver_door], ids=["django", "realm", "receiver"]
)


@ENTRANCES
@pytest.mark.django_db
def test_a_request_without_an_id_gets_a_new_one(client, settings, send):
    settings.TRUSTED_PROXIES = [PROXY]
    first = send(client, None, PROXY)["X-Request-Id"]
    second = send(client, None, PROXY)["X-Request-Id"]
    assert GENERATED.fullmatch(first) and GENERATED.fullmatch(second)
    assert first != second


@ENTRANCES
@pytest.mark.django_db
def test_the_id_of_a_trusted_proxy_is_kept_and_echoed(client, settings, send):
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    response = send(client, "lb-7f3a:2c91.0@edge_1", PROXY)
    assert response["X-Request-Id"] == "lb-7f3a:2c91.0@edge_1"
    assert request_id.current() == "lb-7f3a:2c91.0@edge_1"


@ENTRANCES
@pytest.mark.django_db
def test_the_id_of_any_other_peer_is_replaced(client, settings, send):
    settings.TRUSTED_PROXIES = [PROXY]
    response = send(client, "chosen-by-the-client", "192.0.2.1")
    assert GENERATED.fullmatch(response["X-Request-Id"])
    settings.TRUSTED_PROXIES = []
    response = send(client, "chosen-by-the-client", PROXY)
    assert GENERATED.fullmatch(response["X-Request-Id"])


@pytest.mark.parametrize(
    "header",
    [
        "a" * (request_id.MAX_LENGTH + 1),
        'x"}\n{"level": "error", "message": "forged',
        "with space",
        "tab\there",
        "ünïcode",
        "semi;colon",
        "<script>",
    ],
    ids=["too-long", "forged-line", "space", "tab", "non-ascii", "semicolon", "markup"],
)
@pytest.mark.django_db
def test_an_implausible_id_even_from_a_trusted_proxy_is_replaced(client, settings, header):
    settings.TRUSTED_PROXIES = [PROXY]
    for send in (through_django, through_realm_door):
        assert GENERATED.fullmatch(send(client, header, PROXY)["X-Request-Id"])


@pytest.mark.django_db
def test_an_id_of_the_longest_length_is_kept(client, settings):
    settings.TRUSTED_PROXIES = [PROXY]
    longest = "b" * request_id.MAX_LENGTH
    assert through_django(client, longest, PROXY)["X-Request-Id"] == longest


@pytest.mark.django_db
def test_the_log_lines_of_a_request_carry_its_id(client, settings, caplog):
    settings.TRUSTED_PROXIES = [PROXY]
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/no-such-page", REMOTE_ADDR=PROXY, HTTP_X_REQUEST_ID="trace-404")
    assert response.status_code == 404
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    for record in records:
        RequestIdFilter().filter(record)
        assert json.loads(JsonFormatter().format(record))["request_id"] == "trace-404"


def test_the_settings_attach_the_request_id_filter_to_the_console_handler(settings):
    assert "request_id" in settings.LOGGING["handlers"]["console"]["filters"]
    assert settings.LOGGING["filters"]["request_id"]["()"] == "gitlab_core.request_id.RequestIdFilter"
    assert settings.MIDDLEWARE[0] == "gitlab_core.request_id.RequestIdMiddleware"


def test_a_record_outside_any_request_has_no_id():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "idle", (), None)
    RequestIdFilter().filter(record)
    assert "request_id" not in json.loads(JsonFormatter().format(record))


class FakeTask:
    """Only the request attributes the receivers read (the signals' real senders are
    covered by the live worker test)."""

    def __init__(self, **request):
        self.request = type("Request", (), {"is_eager": False, **request})()


def test_a_published_task_carries_the_current_id_in_its_headers():
    headers: dict = {}
    send_request_id(headers=headers)
    assert "request_id" not in headers
    request_id.set_current("req-1")
    send_request_id(headers=headers)
    assert headers["request_id"] == "req-1"


@pytest.mark.parametrize(
    ("received", "expected"),
    [("req-1", "req-1"), (None, GENERATED), ("bad\nid", GENERATED), ("x" * 500, GENERATED)],
    ids=["carried", "none", "implausible", "too-long"],
)
def test_a_task_runs_with_the_id_it_was_sent_with_or_a_new_one(received, expected):
    task = FakeTask(request_id=received) if received is not None else FakeTask()
    receive_request_id(task=task)
    if isinstance(expected, str):
        assert request_id.current() == expected
    else:
        assert expected.fullmatch(request_id.current())


@pytest.mark.django_db
def test_an_eager_task_logs_with_its_callers_id(caplog):
    from workers.events import prune_registry_events

    request_id.set_current("caller")
    with caplog.at_level(logging.INFO, logger="workers.events"):
        prune_registry_events.apply()
    [record] = [r for r in caplog.records if r.name == "workers.events"]
    RequestIdFilter().filter(record)
    assert record.request_id == "caller"
    assert request_id.current() == "caller"
