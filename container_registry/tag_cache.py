"""Cache of tag creation times, in Django's cache.

A tag's creation time costs two registry reads (manifest, config blob), and cleanup
policies need it for every tag. Entries are keyed by repository id and tag name and
trusted until they expire, so a caller must choose a TTL after which a stale date can do
no harm (cleanup caches kept tags only until ``older_than`` could let them go, as GitLab
does). A tag pushed again or deleted is forgotten at once (``forget``: the event
receiver and the tag API), in one ``delete_many`` call per event.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping

from django.core.cache import cache

DEFAULT_TTL_SECONDS = 24 * 3600


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
    entries = {_key(repository_id, n): created.timestamp() for n, created in values.items() if created is not None}
    if entries:
        cache.set_many(entries, timeout=ttl_seconds)


def forget(repository_id: int, names: Iterable[str]) -> None:
    """Drop the entries of tags that were pushed again or deleted, now, in one call."""
    keys = [_key(repository_id, name) for name in names]
    if keys:
        cache.delete_many(keys)


__all__ = ["DEFAULT_TTL_SECONDS", "forget", "get_many", "set_many"]
