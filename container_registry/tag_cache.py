"""Cache of tag creation times, in Django's cache.

A tag's creation time costs two registry reads (manifest, config blob), and cleanup
policies and tag listings need it for every tag. Entries are keyed by repository id and
tag name and remember the manifest digest they were read from: a caller that knows the
current digests passes them and never gets the date of an image the tag no longer points
at; a caller that does not trusts an entry until it expires, so it must choose a TTL
after which a stale date can do no harm (cleanup caches kept tags only until
``older_than`` could let them go, as GitLab does).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping

from django.conf import settings
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache
from django.db import connections
from django.utils.module_loading import import_string

from gitlab_core.fast_cache import redis_client

DEFAULT_TTL_SECONDS = 24 * 3600

logger = logging.getLogger(__name__)
# How long the receiver's forgets wait to be sent together (``forget_soon``), and how
# many may wait at most.
BATCH_DELAY_SECONDS = 0.02
MAX_QUEUED_KEYS = 100_000
_fork_lock = threading.Lock()


def _key(repository_id: int, name: str) -> str:
    # Tag names may hold characters memcached-style backends refuse; hash them.
    return f"cr:tag-created:{repository_id}:{hashlib.sha1(name.encode()).hexdigest()}"


def get_many(
    repository_id: int, names: Iterable[str], *, digests: Mapping[str, str | None] | None = None
) -> dict[str, dt.datetime]:
    """Cached creation times of ``names``; names missing from the result are unknown
    (or cached for another digest than the one given in ``digests``)."""
    names = list(names)
    if not names:
        return {}
    keys = {_key(repository_id, name): name for name in names}
    found = cache.get_many(list(keys))
    result: dict[str, dt.datetime] = {}
    for key, entry in found.items():
        name = keys[key]
        try:
            digest, stamp = entry
        except (TypeError, ValueError):
            continue
        wanted = digests.get(name) if digests is not None else None
        if wanted is not None and digest is not None and wanted != digest:
            continue
        result[name] = dt.datetime.fromtimestamp(stamp, tz=dt.UTC)
    return result


def set_many(
    repository_id: int,
    values: Mapping[str, dt.datetime],
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    *,
    digests: Mapping[str, str | None] | None = None,
) -> None:
    """Remember creation times (``None`` values are not cached)."""
    entries = {
        _key(repository_id, name): ((digests or {}).get(name), created.timestamp())
        for name, created in values.items()
        if created is not None
    }
    if entries:
        cache.set_many(entries, timeout=ttl_seconds)


def forget(repository_id: int, names: Iterable[str]) -> None:
    """Drop the entries of tags that were pushed again or deleted, now."""
    keys = [_key(repository_id, name) for name in names]
    if keys:
        _delete(keys)


def forget_soon(repository_id: int, names: Iterable[str]) -> None:
    """``forget``, for the event receiver: on Redis the keys are deleted by a background
    thread of this process, within ``BATCH_DELAY_SECONDS``, in one DEL with those of the
    other events arriving meanwhile, so a push event does not pay a round trip of its
    own (it was about a quarter of an event's cost).
    The registry sends the event after the push, so an entry could already be read in
    between; 20 milliseconds more change nothing, and under load each DEL then serves
    dozens of events instead of a handful. A cache fault is logged and
    ignored: the entry then lives until its TTL. Other backends forget at once."""
    keys = [_key(repository_id, name) for name in names]
    if not keys:
        return
    if _is_redis(settings.CACHES["default"]["BACKEND"]):
        _forgetter.add(keys)
    else:
        _delete(keys)


@functools.cache
def _is_redis(backend_path: str) -> bool:
    # What redis_client() decides from the cache object, from the setting alone: this
    # runs for every push event.
    return issubclass(import_string(backend_path), RedisCache)


def flush_forgets(timeout: float = 5.0) -> bool:
    """Wait until the keys given to ``forget_soon`` are deleted (tests, shutdown)."""
    return _forgetter.flush(timeout)


def _delete(keys: list[str]) -> None:
    # The receiver and cleanup call this for many tags: skip Django's Redis wrapper.
    client, backend = redis_client()
    if client is None:
        backend.delete_many(keys)
    else:
        client.delete(*(backend.make_and_validate_key(key) for key in keys))


class _Forgetter:
    """One daemon thread per process that deletes the keys queued meanwhile in one DEL.

    At most ``MAX_QUEUED_KEYS`` wait (a Redis that stopped answering must not grow the
    queue without end: keys beyond it are dropped with a warning, and their entries live
    until their TTL). A forked child starts afresh; a thread that died is replaced on
    the next call."""

    def __init__(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._queued: list[str] = []
        self._pending = 0
        self._wake = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def add(self, keys: list[str]) -> None:
        if self._pid != os.getpid():
            with _fork_lock:
                if self._pid != os.getpid():
                    # A forked child inherits neither the thread nor a usable lock.
                    self.__init__()
        with self._lock:
            room = MAX_QUEUED_KEYS - len(self._queued)
            if room < len(keys):
                logger.warning("tag-date forget queue full: %d keys dropped", len(keys) - max(room, 0))
                keys = keys[: max(room, 0)]
            self._queued.extend(keys)
            self._pending += len(keys)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tag-cache-forget", daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def flush(self, timeout: float) -> bool:
        with self._lock:
            return self._wake.wait_for(lambda: self._pending == 0, timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._wake.wait_for(lambda: self._queued)
            # Let the keys of the events arriving meanwhile join this DEL: under load one
            # round trip then serves many events.
            time.sleep(BATCH_DELAY_SECONDS)
            with self._lock:
                keys, self._queued = self._queued, []
            try:
                _delete(keys)
                # Only if the cache became a database cache meanwhile: no connection of
                # this thread may stay open.
                connections.close_all()
            except Exception as exc:  # noqa: BLE001 -- any cache fault; the entries expire by their TTL
                logger.warning("could not forget %d cached tag dates: %s", len(keys), exc)
            finally:
                with self._lock:
                    self._pending -= len(keys)
                    self._wake.notify_all()


_forgetter = _Forgetter()


__all__ = ["DEFAULT_TTL_SECONDS", "flush_forgets", "forget", "forget_soon", "get_many", "set_many"]
