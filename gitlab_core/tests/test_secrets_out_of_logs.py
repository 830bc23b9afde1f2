"""No token reaches a log line or an error report.

Requests carry real tokens (a personal access token, a deploy token, a CI job token) in
the query string and fail; every record is captured twice: by pytest's ``caplog`` and by
the service's JSON formatter on a handler of the root logger (the one every process
uses), which also writes the extras, such as Django's request object with its full path.
"""

from __future__ import annotations

import base64
import io
import logging
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import get_exception_reporter_class, technical_500_response

from gitlab_core.logging import JsonFormatter
from gitlab_core.redaction import FILTERED, redact
from projects.models import CiJob, DeployToken
from tests_support.factories import make_group, make_project, make_token, make_user


@pytest.fixture
def formatted_logs(caplog):
    """The JSON lines the service would write, for every record of every logger."""
    caplog.set_level(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


@pytest.fixture
def secrets_of_each_kind(db):
    user = make_user("tokenholder")
    project = make_project(make_group("acme", owner=user), "svc", creator=user)
    deploy = DeployToken(project=project, name="pull", scopes=["read_registry"])
    deploy_secret = deploy.set_secret()
    deploy.save()
    job = CiJob(project=project, user=user)
    job_secret = job.set_secret()
    job.save()
    return {"pat": make_token(user, ["read_api"]), "deploy": deploy_secret, "job": job_secret}


def assert_nowhere(secret: str, caplog, formatted_logs) -> None:
    formatted = formatted_logs.getvalue()
    assert secret not in formatted
    assert secret not in caplog.text
    assert all(secret not in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize(
    "text",
    [
        "GET /api/v4/projects/1?private_token={s}&page=2",
        "/api/v4/x?PRIVATE_TOKEN={s}",
        "/api/v4/x?job_token={s}",
        "/api/v4/x?access_token={s}#frag",
        "/api/v4/x?private%5Ftoken%3D{s}",
        "<WSGIRequest: GET '/api/v4/user?a=1&access_token={s}'>",
        '{{"message": "token was {s}"}}',
        "grant_type=refresh_token&refresh_token={s}&service=container_registry",
    ],
)
@pytest.mark.parametrize(
    "secret", ["glpat-AbCdEf0123456789_-xyz", "gldt-QwErTy0987654321", "glcbt-aA1_bB2-cC3", "glrrt-Rr0_Ff1-Hh2"]
)
def test_redact_hides_secret_parameters_and_prefixed_tokens(text, secret):
    redacted = redact(text.format(s=secret))

    assert secret not in redacted
    assert FILTERED in redacted


def test_redact_hides_a_parameter_value_without_a_known_prefix_and_keeps_the_rest():
    assert redact("/api/v4/x?per_page=5&private_token=Z9y8X7w6&page=2") == (
        f"/api/v4/x?per_page=5&private_token={FILTERED}&page=2"
    )
    assert redact("nothing secret here: glpat without a dash") == "nothing secret here: glpat without a dash"


@pytest.mark.parametrize(
    ("kind", "parameter", "url"),
    [
        ("pat", "private_token", "/api/v4/projects/999999"),  # 404
        ("pat", "private_token", "/api/v4/application/settings"),  # 403: not an administrator
        ("pat", "access_token", "/api/v4/projects/999999"),
        ("deploy", "private_token", "/api/v4/user"),  # 401: not a personal access token
        ("job", "job_token", "/api/v4/user"),  # 401
        ("job", "private_token", "/api/v4/no/such/path"),  # 404
    ],
)
def test_a_failed_request_with_a_token_in_the_query_string_logs_no_secret(
    client, secrets_of_each_kind, caplog, formatted_logs, kind, parameter, url
):
    secret = secrets_of_each_kind[kind]

    response = client.get(f"{url}?{parameter}={secret}&per_page=5")

    assert 400 <= response.status_code < 500
    assert_nowhere(secret, caplog, formatted_logs)
    # The failure was logged, with the request's full path: redacted, not dropped.
    assert f"{parameter}={FILTERED}&per_page=5" in formatted_logs.getvalue()


def test_an_exception_logged_with_a_token_in_its_message_and_traceback_logs_no_secret(
    secrets_of_each_kind, caplog, formatted_logs
):
    secret = secrets_of_each_kind["pat"]
    try:
        raise ValueError(f"could not use {secret}")
    except ValueError:
        logging.getLogger("gitlab_core.tests").exception("failed for /api/v4/user?private_token=%s", secret)

    assert_nowhere(secret, caplog, formatted_logs)
    assert "ValueError: could not use glpat-[FILTERED]" in formatted_logs.getvalue()


def _failure_of_a_view(request):
    """The exception of a view that fails with the query string in a local variable and in
    its message (the traceback starts here: the test's own variables stay out of it)."""

    def failing_view(request):
        query = request.META["QUERY_STRING"]
        raise RuntimeError(f"cannot answer {query}")

    try:
        failing_view(request)
    except RuntimeError:
        return sys.exc_info()


def test_error_reports_hide_tokens_in_the_query_string_headers_and_local_variables(secrets_of_each_kind, settings):
    pat, deploy, job = secrets_of_each_kind["pat"], secrets_of_each_kind["deploy"], secrets_of_each_kind["job"]
    basic = base64.b64encode(f"gitlab-ci-token:{job}".encode()).decode()
    request = RequestFactory().get(
        f"/api/v4/projects/1?private_token={pat}&job_token=plainvalue123&page=2",
        HTTP_PRIVATE_TOKEN=pat,
        HTTP_JOB_TOKEN=job,
        HTTP_AUTHORIZATION=f"Basic {basic}",
        HTTP_X_NOTE=deploy,
    )

    exc_info = _failure_of_a_view(request)
    reporter = get_exception_reporter_class(request)(request, *exc_info)
    settings.DEBUG = True  # the debug page renders the same report
    debug_page = technical_500_response(request, *exc_info).content.decode()

    for report in (reporter.get_traceback_html(), reporter.get_traceback_text(), debug_page):
        for hidden in (pat, deploy, job, basic, "plainvalue123"):
            assert hidden not in report
        assert "private_token" in report  # the report still says what was asked
        assert "RuntimeError" in report
