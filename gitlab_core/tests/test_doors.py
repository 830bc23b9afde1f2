"""The WSGI doors' own handling, around whatever their handler does."""

from __future__ import annotations

import json
import re
from unittest import mock

import pytest
from django.db import OperationalError

from gitlab_core import doors


def _serve(handler) -> tuple[str, dict, dict]:
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)

    # The connection check is Django's own; here it must not touch the test database.
    with mock.patch("gitlab_core.doors.check_connection"):
        body = b"".join(doors.serve({"PATH_INFO": "/jwt/auth"}, start_response, handler))
    return seen["status"], seen["headers"], json.loads(body)


@pytest.mark.parametrize(
    ("error", "status", "logged"),
    [
        # A database error nobody answered: 503, which the registry retries.
        (OperationalError("connection refused"), "503 Service Unavailable", "database unavailable answering /jwt/auth"),
        # Any other error: a logged 500.
        (KeyError("bug"), "500 Internal Server Error", "unexpected error answering /jwt/auth"),
    ],
)
def test_an_error_the_handler_did_not_answer_is_answered_in_the_api_shape(caplog, error, status, logged):
    def handler(environ):
        raise error

    answered, headers, body = _serve(handler)
    assert answered == status
    assert body == {"message": status}
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert logged in caplog.text


def test_the_answer_gets_its_length_type_and_extra_headers():
    status, headers, body = _serve(lambda environ: doors.json_answer(201, {"a": 1}, [("Cache-Control", "no-store")]))
    assert status == "201 Created"
    assert re.fullmatch(r"[0-9a-f]{32}", headers.pop("X-Request-Id"))
    assert headers == {
        "Content-Type": "application/json",
        "Content-Length": str(len(json.dumps({"a": 1}))),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def test_error_reports_hide_connection_strings_from_the_environment(rf):
    from django.views.debug import get_default_exception_reporter_filter

    # granian copies the process environment into every request's metadata.
    request = rf.get("/", DATABASE_URL="postgres://app:hunter2@db/app", CACHE_URL="redis://:pw@r/1", PATH_X="ok")
    meta = get_default_exception_reporter_filter().get_safe_request_meta(request)
    assert "hunter2" not in meta["DATABASE_URL"] and "pw@" not in meta["CACHE_URL"]
    assert meta["PATH_X"] == "ok"
