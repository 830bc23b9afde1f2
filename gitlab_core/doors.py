"""Bare WSGI doors: the two machine endpoints served in front of Django.

The registry calls ``/jwt/auth`` for every token and posts one notification per request
to the event receiver, waiting for each answer. For these two paths Django's request
handling (middleware, URL resolution, request and response objects) cost more than the
work itself (``docs/performance.md``), so ``gitlab_core.wsgi`` hands them to a plain
function of the environ. A door keeps what matters of Django's handling:

* before and after the request the database connection is checked as Django's request
  signals do (closed when broken or older than ``CONN_MAX_AGE``), without the signal
  dispatch, which cost more than the check. The signals' other work is closing caches,
  a no-op for the database and Redis backends;
* a lost database connection or a database timeout nobody answered is a 503 (the
  registry retries; ``gitlab_core.errors.DATABASE_UNAVAILABLE``), any
  other unexpected error is logged and answered 500, both in the API's shape (Django
  would answer its HTML error page);
* ``X-Content-Type-Options: nosniff``;
* the request id (``gitlab_core.request_id``): chosen, made current for the logs and
  echoed in ``X-Request-Id``;
* logs name the client by ``gitlab_core.client_address`` (``TRUSTED_PROXIES``), as the
  realm's ban and Django's request logs do.

It does not validate ``Host`` against ``ALLOWED_HOSTS`` (neither endpoint builds a URL
from it), and middleware added to the settings does not run for these two paths: give
such behaviour to the doors as well. The same endpoints are also Django views (tests,
``runserver``) that call the same decision functions.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from http import HTTPStatus

from django.db import DEFAULT_DB_ALIAS, connections

from gitlab_core.client_address import client_address
from gitlab_core.errors import DATABASE_UNAVAILABLE
from gitlab_core.request_id import HEADER as REQUEST_ID_HEADER
from gitlab_core.request_id import begin as begin_request

logger = logging.getLogger(__name__)

# (status, extra headers, content type, body)
Answer = tuple[int, list[tuple[str, str]], str, bytes]


def json_answer(status: int, payload: dict | None, headers: list[tuple[str, str]] | None = None) -> Answer:
    body = b"" if payload is None else json.dumps(payload).encode()
    return status, headers or [], "application/json", body


def read_body(environ, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes.

    A missing or unparsable ``Content-Length`` means an empty body, as for Django,
    unless the server says the input ends by itself (chunked bodies, which skopeo sends
    for token forms, under granian and gunicorn): then it is read to its end.
    """
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > limit:
        return None
    if length > 0:
        return environ["wsgi.input"].read(length)
    if environ.get("wsgi.input_terminated") or environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
        body = environ["wsgi.input"].read(limit + 1)
        return None if len(body) > limit else body
    return b""


def check_connection() -> None:
    """What Django's request signals do for the database connection."""
    connections[DEFAULT_DB_ALIAS].close_if_unusable_or_obsolete()


def serve(environ, start_response, handler: Callable[[dict], Answer]):
    """Answer one request with ``handler(environ)``, wrapped as Django wraps a view."""
    request_id = begin_request(environ)
    try:
        check_connection()
        status, headers, content_type, body = handler(environ)
    except DATABASE_UNAVAILABLE as exc:
        # A lost or refused connection, or a timeout, the handler did not answer itself.
        logger.warning(
            "database unavailable answering %s: %s",
            environ.get("PATH_INFO"),
            exc.__class__.__name__,
            extra={"client_address": client_address(environ)},
        )
        status, headers, content_type, body = json_answer(503, {"message": "503 Service Unavailable"})
    except Exception:
        logger.exception(
            "unexpected error answering %s", environ.get("PATH_INFO"), extra={"client_address": client_address(environ)}
        )
        status, headers, content_type, body = json_answer(500, {"message": "500 Internal Server Error"})
    try:
        check_connection()
    except DATABASE_UNAVAILABLE:
        pass  # the next request checks again; this answer is already decided
    start_response(
        f"{status} {HTTPStatus(status).phrase}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("X-Content-Type-Options", "nosniff"),
            (REQUEST_ID_HEADER, request_id),
            *headers,
        ],
    )
    return [body]
