"""The WSGI doors' own handling, around whatever their handler does."""

from __future__ import annotations

import json
from unittest import mock

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


def test_a_database_error_nobody_answered_is_a_503_the_registry_retries(caplog):
    def handler(environ):
        raise OperationalError("connection refused")

    status, headers, body = _serve(handler)
    assert status == "503 Service Unavailable"
    assert body == {"message": "503 Service Unavailable"}
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "database unavailable answering /jwt/auth" in caplog.text


def test_any_other_error_is_a_logged_500(caplog):
    def handler(environ):
        raise KeyError("bug")

    status, headers, body = _serve(handler)
    assert status == "500 Internal Server Error"
    assert body == {"message": "500 Internal Server Error"}
    assert "unexpected error answering /jwt/auth" in caplog.text


def test_the_answer_gets_its_length_type_and_extra_headers():
    status, headers, body = _serve(lambda environ: doors.json_answer(201, {"a": 1}, [("Cache-Control", "no-store")]))
    assert status == "201 Created"
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
