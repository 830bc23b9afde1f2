"""The request id: one value that ties together every log line of a request and of the
tasks it enqueued.

Each request gets an id when it begins (``begin``): the ``X-Request-Id`` header when the
peer is a trusted proxy (``TRUSTED_PROXIES``, as for the client address) and the value is
a plausible id (at most ``MAX_LENGTH`` characters of letters, digits and ``._:@-``),
else a new random one. Anyone else can write the header, and a value from it would let
a client forge or split log lines. The id is echoed in the response's ``X-Request-Id``
(``RequestIdMiddleware`` for Django, ``gitlab_core.doors`` for the two WSGI doors).

The id is the current one of the thread (a context variable) until the next request or
task begins; ``RequestIdFilter`` adds it as ``request_id`` to every log record. It is not
reset when the application returns: granian writes its access log line in the same
thread after that, and the line carries the id too. Celery carries it to the tasks a
request enqueues in a message header (``gitlab_core.celery``); a task that comes without
one (beat's) gets a new id, which the tasks it enqueues inherit.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from contextvars import ContextVar

from django.conf import settings

from gitlab_core.client_address import is_trusted_proxy, parse_address

HEADER = "X-Request-Id"
META_KEY = "HTTP_X_REQUEST_ID"
# A UUID is 36 characters; proxies' ids (nginx, Envoy, load balancers) are shorter than this.
MAX_LENGTH = 128
_VALID = re.compile(r"[A-Za-z0-9._:@-]+")

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id() -> str:
    # 128 random bits in hex. Not a secret, so the process's PRNG (reseeded in each
    # forked process) serves, at half the cost of the system's randomness.
    return f"{random.getrandbits(128):032x}"


def valid_request_id(value: object) -> str | None:
    """``value`` when it is a plausible request id, else None."""
    if isinstance(value, str) and 0 < len(value) <= MAX_LENGTH and _VALID.fullmatch(value):
        return value
    return None


def begin(meta: Mapping[str, str]) -> str:
    """Start a request (a WSGI environ or ``request.META``): choose its id, make it current."""
    request_id = None
    incoming = meta.get(META_KEY)
    if incoming and settings.TRUSTED_PROXIES and is_trusted_proxy(parse_address(meta.get("REMOTE_ADDR") or "")):
        request_id = valid_request_id(incoming)
    request_id = request_id or new_request_id()
    _current.set(request_id)
    return request_id


def current() -> str | None:
    return _current.get()


def set_current(request_id: str | None) -> None:
    _current.set(request_id)


class RequestIdMiddleware:
    """Django's side of ``begin``: ``request.request_id`` and the response header."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = begin(request.META)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            request_id = _current.get()
            if request_id is not None:
                record.request_id = request_id
        return True
