"""Requests through ``gitlab_core.wsgi.application``, the application production servers
run: Django's test client and live server use Django's handler only, so they never take
the doors that application opens in front of Django (``gitlab_core.doors``)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from unittest import mock
from wsgiref.util import setup_testing_defaults

from django.core import signals
from django.db import close_old_connections


@dataclass
class WsgiResponse:
    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""

    def json(self):
        return json.loads(self.content)

    def __getitem__(self, header: str) -> str:
        """A response header, by its name in any case (as on Django's responses)."""
        return {name.lower(): value for name, value in self.headers.items()}[header.lower()]


def call_wsgi(method: str, path: str, body: bytes = b"", **environ) -> WsgiResponse:
    """One request through ``gitlab_core.wsgi.application``. As Django's test client
    does, neither Django's request signals nor the doors' equivalent close the test's
    database connection (it is inside the test's transaction)."""
    from gitlab_core.wsgi import application

    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "wsgi.input": io.BytesIO(body), "REMOTE_ADDR": "127.0.0.1"}
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
        with mock.patch("gitlab_core.doors.check_connection"):
            chunks = application(env, start_response)
            response.content = b"".join(chunks)
            getattr(chunks, "close", lambda: None)()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return response
