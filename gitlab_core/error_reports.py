"""What Django's error pages and reports may show of settings and request metadata.

Django hides names containing API, AUTH, TOKEN, KEY, SECRET, PASS, SIGNATURE or
HTTP_COOKIE. Our connection strings carry passwords in names ending in ``_URL``
(``DATABASE_URL``, ``CACHE_URL``, ``CELERY_BROKER_URL``), and granian puts the whole
process environment into every request's metadata, so those are hidden too.

Tokens also travel in the query string and in headers (``PRIVATE-TOKEN``, ``JOB-TOKEN``,
``Authorization``): the headers are hidden, the query parameters' values are hidden in
the GET table, and the rendered report (URL, metadata, local variables, exception text)
goes through ``gitlab_core.redaction.redact`` as a whole.
"""

from __future__ import annotations

import re

from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from gitlab_core.redaction import SECRET_HEADERS, SECRET_QUERY_PARAMETERS, redact


class ReporterFilter(SafeExceptionReporterFilter):
    hidden_settings = re.compile("API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|_URL$|DSN", flags=re.I)

    def get_safe_request_meta(self, request) -> dict:
        meta = super().get_safe_request_meta(request)
        for name, value in meta.items():
            if name in SECRET_HEADERS:
                meta[name] = self.cleansed_substitute
            elif isinstance(value, str):
                meta[name] = redact(value)
        return meta


class Reporter(ExceptionReporter):
    def get_traceback_data(self) -> dict:
        data = super().get_traceback_data()
        if "request_GET_items" in data:
            data["request_GET_items"] = [
                (name, ReporterFilter.cleansed_substitute if name.lower() in SECRET_QUERY_PARAMETERS else value)
                for name, value in data["request_GET_items"]
            ]
        return data

    def get_traceback_html(self) -> str:
        return redact(super().get_traceback_html())

    def get_traceback_text(self) -> str:
        return redact(super().get_traceback_text())
