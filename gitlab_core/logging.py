"""Structured logs: one JSON object per line, with any ``extra=`` fields kept.

No secret reaches a log line: ``configure`` (Django's ``LOGGING_CONFIG``, run by every
process that sets Django up: web, commands, Celery worker and beat) makes each record's
message redacted before any handler sees it, and ``JsonFormatter`` redacts its whole
output again (extras such as the request object, tracebacks), which also covers granian's
own process (``granian-logging.json``). The rule is ``gitlab_core.redaction.redact``.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime

from gitlab_core.redaction import install_record_redaction, redact

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def configure(config: dict) -> None:
    install_record_redaction()
    logging.config.dictConfig(config)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = record.exc_text or self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))
