"""Cache of tag creation times, in Django's cache.

A tag's creation time costs two registry reads (manifest, config blob), and cleanup
policies need it for every tag. Entries are keyed by repository id and tag name and
trusted until they expire, so a caller must choose a TTL after which a stale date can do
no harm (cleanup caches kept tags only until ``older_than`` could let them go, as GitLab
does). A tag pushed again or deleted is forgotten at once (``forget``: the event
receiver and the tag API), in one ``delete_many`` call per event. ``set_many`` first
moves the repository's ``tag_dates_cached_until`` forward, and the receiver forgets only
for repositories whose entries may still live: pushes elsewhere cost no cache round trip.

The dates one cleanup read (``get_run_dates`` / ``set_run_dates``) are kept apart: one
entry per repository whose cleanup the per-run limit split into several runs, so that
each run after the first reads from the registry only the tags it has not seen. Such an
entry is trusted only while the repository's push count (users' pushes, from the event
receiver) is the one it was read under: any push since and the next run reads afresh.
It is dropped when the cleanup finishes and expires ``RUN_DATES_TTL_SECONDS`` after the
last run that wrote it; it holds at most ``MAX_RUN_DATES`` tags, compressed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping

from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from container_registry.models import ContainerRepository

DEFAULT_TTL_SECONDS = 24 * 3600
# A cleanup's dates outlive a gap of two hours between its runs (unfinished runs resume
# at the latest with the hourly scheduler); a longer pause starts the reading again.
RUN_DATES_TTL_SECONDS = 2 * 3600
# About 25 bytes a tag before compression: 250,000 tags stay within a few megabytes in
# the cache (a task holds these dates for its decisions anyway). A larger repository's
# runs read their dates each time.
MAX_RUN_DATES = 250_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def _key(repository_id: int, name: str) -> str:
    # Tag names may hold characters memcached-style backends refuse; hash them.
    return f"cr:tag-created:{repository_id}:{hashlib.sha1(name.encode()).hexdigest()}"


def get_many(repository_id: int, names: Iterable[str]) -> dict[str, dt.datetime]:
    """Cached creation times of ``names``; names missing from the result are unknown."""
    keys = {_key(repository_id, name): name for name in names}
    if not keys:
        return {}
    result: dict[str, dt.datetime] = {}
    for key, stamp in cache.get_many(list(keys)).items():
        if isinstance(stamp, (tuple, list)) and len(stamp) == 2:
            # Written as (digest, timestamp) by earlier versions, until they expire.
            stamp = stamp[1]
        if isinstance(stamp, (int, float)):
            result[keys[key]] = dt.datetime.fromtimestamp(stamp, tz=dt.UTC)
    return result


def set_many(
    repository_id: int, values: Mapping[str, dt.datetime | None], ttl_seconds: int = DEFAULT_TTL_SECONDS
) -> None:
    """Remember creation times (``None`` values are not cached)."""
    remember(repository_id, {ttl_seconds: values})


def remember(repository_id: int, groups: Mapping[int, Mapping[str, dt.datetime | None]]) -> None:
    """``set_many`` for several TTLs (seconds -> creation times): the repository row is
    marked once, for the longest."""
    groups = {
        ttl: {_key(repository_id, n): created.timestamp() for n, created in values.items() if created is not None}
        for ttl, values in groups.items()
    }
    groups = {ttl: entries for ttl, entries in groups.items() if entries}
    if not groups:
        return
    # First the repository row: from then on a push of one of its tags forgets the
    # tag's entry (the receiver forgets only for repositories marked so).
    until = timezone.now() + dt.timedelta(seconds=max(groups))
    ContainerRepository.objects.filter(pk=repository_id).filter(
        Q(tag_dates_cached_until__isnull=True) | Q(tag_dates_cached_until__lt=until)
    ).update(tag_dates_cached_until=until)
    for ttl, entries in groups.items():
        cache.set_many(entries, timeout=ttl)


def forget(repository_id: int, names: Iterable[str]) -> None:
    """Drop the entries of tags that were pushed again or deleted, now, in one call."""
    keys = [_key(repository_id, name) for name in names]
    if keys:
        cache.delete_many(keys)


def _run_key(repository_id: int) -> str:
    return f"cr:cleanup-dates:{repository_id}"


def get_run_dates(repository_id: int, *, push_count: int) -> dict[str, dt.datetime | None]:
    """The creation times (None: unknown) an earlier run of this cleanup read, or nothing
    when there are none or the repository has been pushed to since (``push_count``
    differs)."""
    raw = cache.get(_run_key(repository_id))
    if not isinstance(raw, bytes):
        return {}
    try:
        stored_count, dates = json.loads(zlib.decompress(raw))
    except (zlib.error, ValueError, TypeError):
        return {}
    if stored_count != push_count or not isinstance(dates, dict):
        return {}
    return {name: _EPOCH + micros * _MICROSECOND if isinstance(micros, int) else None for name, micros in dates.items()}


def set_run_dates(repository_id: int, dates: Mapping[str, dt.datetime | None], *, push_count: int) -> None:
    """Remember the creation times read by this cleanup (all of them, unknown ones too),
    under the repository's current ``push_count``. Too many to remember: nothing is kept."""
    if len(dates) > MAX_RUN_DATES:
        forget_run_dates(repository_id)
        return
    # Whole microseconds since the epoch: exact, so keep_n orders remembered dates as read.
    encoded = {name: (created - _EPOCH) // _MICROSECOND if created else None for name, created in dates.items()}
    raw = zlib.compress(json.dumps([push_count, encoded], separators=(",", ":")).encode(), 1)
    cache.set(_run_key(repository_id), raw, timeout=RUN_DATES_TTL_SECONDS)


def forget_run_dates(repository_id: int) -> None:
    cache.delete(_run_key(repository_id))


__all__ = [
    "DEFAULT_TTL_SECONDS",
    "MAX_RUN_DATES",
    "RUN_DATES_TTL_SECONDS",
    "forget",
    "forget_run_dates",
    "get_many",
    "get_run_dates",
    "remember",
    "set_many",
    "set_run_dates",
]
