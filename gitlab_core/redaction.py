"""Secrets out of logs and error reports: the one rule every log line and report goes through.

Clients may carry a token in the query string (``private_token``, ``job_token``,
``access_token``, as GitLab accepts them, and the realm's ``refresh_token``) or anywhere
else a value can travel; every token this service issues starts with a known prefix (``gitlab_core.tokens``). ``redact``
replaces the value of those parameters and any prefixed token with ``[FILTERED]``, in
plain and percent-encoded spelling. RE2 keeps the matching linear in the text's length.
"""

from __future__ import annotations

import logging

import re2

from gitlab_core.tokens import CI_JOB_TOKEN_PREFIX, DEPLOY_TOKEN_PREFIX, PAT_PREFIX, REGISTRY_REFRESH_TOKEN_PREFIX

FILTERED = "[FILTERED]"
SECRET_QUERY_PARAMETERS = ("private_token", "job_token", "access_token", "refresh_token")
# Request headers that carry credentials (WSGI names), hidden from error reports.
SECRET_HEADERS = ("HTTP_AUTHORIZATION", "HTTP_PRIVATE_TOKEN", "HTTP_JOB_TOKEN", "HTTP_DEPLOY_TOKEN")

_PARAMETER = re2.compile(
    r"(?i)((?:private|job|access|refresh)(?:_|%5f)token(?:=|%3d))[^&\s\"'<>\\]*"  # name=value up to a separator
)
_PREFIXES = "|".join(
    p.rstrip("-") for p in (PAT_PREFIX, DEPLOY_TOKEN_PREFIX, CI_JOB_TOKEN_PREFIX, REGISTRY_REFRESH_TOKEN_PREFIX)
)
_PREFIXED_TOKEN = re2.compile(rf"(?i)({_PREFIXES})(?:-|%2d)[A-Za-z0-9_\-]+")


def redact(text: str) -> str:
    """``text`` with every secret query parameter's value and every prefixed token hidden."""
    if not text:
        return text
    text = _PARAMETER.sub(rf"\1{FILTERED}", text)
    return _PREFIXED_TOKEN.sub(rf"\1-{FILTERED}", text)


def install_record_redaction() -> None:
    """Make every log record of this process carry its message already redacted.

    A record factory runs before any handler, so Django's, Celery's and granian's handlers,
    and test captures, all see the same redacted message. Idempotent.
    """
    current = logging.getLogRecordFactory()
    if getattr(current, "redacts_secrets", False):
        return

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = current(*args, **kwargs)
        _redact_record(record)
        return record

    factory.redacts_secrets = True
    logging.setLogRecordFactory(factory)


_TRACEBACKS = logging.Formatter()


def _redact_record(record: logging.LogRecord) -> None:
    if record.exc_info and record.exc_info[0] is not None:
        # Formatters print ``exc_text`` when it is set: the traceback, redacted once here.
        record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 -- a bad format string is the handler's to report
        return
    redacted = redact(message)
    if redacted != message:
        record.msg, record.args = redacted, ()
