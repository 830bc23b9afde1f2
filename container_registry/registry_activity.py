"""When the registry was last heard from: the last push the realm granted and the last
notification the receiver accepted, for ``manage.py registry_check``.

A push grant with no event after it means the registry's notifications do not reach us
(wrong URL or secret in its config): its events queue up in its memory and are lost when
it stops. Both times live in the shared cache, one key each, and each process writes a
key at most once per ``WRITE_INTERVAL`` seconds: the realm and the receiver pay a clock
read per request, and a cache write a few times a minute. So a recorded time may be up to
``WRITE_INTERVAL`` older than the last real one; ``pushes_without_events`` allows for it.
A cache that fails loses a mark, never a token request or an event.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

from django.core.cache import cache
from django.db import DatabaseError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

PUSH_GRANTED = "container_registry:last_push_granted_at"
EVENT_RECEIVED = "container_registry:last_event_received_at"
WRITE_INTERVAL = 10.0
KEEP_SECONDS = 90 * 24 * 3600
# A push is given this long to produce its first event (upload time plus delivery).
DELIVERY_GRACE = dt.timedelta(minutes=5)

_written: dict[str, float] = {}  # key -> monotonic time of this process's last write
_lock = threading.Lock()


def note_push_granted() -> None:
    _note(PUSH_GRANTED)


def note_event_received() -> None:
    _note(EVENT_RECEIVED)


def _note(key: str) -> None:
    now = time.monotonic()
    with _lock:
        if now - _written.get(key, -WRITE_INTERVAL) < WRITE_INTERVAL:
            return
        _written[key] = now
    try:
        cache.set(key, time.time(), timeout=KEEP_SECONDS)
    except (DatabaseError, RedisError, OSError) as exc:
        logger.warning("could not record %s in the cache: %s", key, exc.__class__.__name__)


def last_push_granted_at() -> dt.datetime | None:
    return _read(PUSH_GRANTED)


def last_event_received_at() -> dt.datetime | None:
    return _read(EVENT_RECEIVED)


def _read(key: str) -> dt.datetime | None:
    value = cache.get(key)
    return dt.datetime.fromtimestamp(value, dt.UTC) if isinstance(value, (int, float)) else None


def pushes_without_events(*, now: dt.datetime | None = None) -> dt.datetime | None:
    """The time of the last push granted when no event arrived after it (given
    ``DELIVERY_GRACE`` to arrive), else None."""
    granted, received = last_push_granted_at(), last_event_received_at()
    now = now or dt.datetime.now(dt.UTC)
    if granted is None or now - granted < DELIVERY_GRACE:
        return None
    if received is not None and received >= granted - dt.timedelta(seconds=WRITE_INTERVAL):
        return None
    return granted
