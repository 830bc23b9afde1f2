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
import hashlib
from collections.abc import Iterable, Mapping

from django.core.cache import cache

from gitlab_core.fast_cache import redis_client

DEFAULT_TTL_SECONDS = 24 * 3600


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
    """Drop the entries of tags that were pushed again or deleted."""
    keys = [_key(repository_id, name) for name in names]
    if not keys:
        return
    # The receiver calls this for every tag push: skip the cost of Django's Redis wrapper.
    client, backend = redis_client()
    if client is None:
        backend.delete_many(keys)
    else:
        client.delete(*(backend.make_and_validate_key(key) for key in keys))


__all__ = ["DEFAULT_TTL_SECONDS", "forget", "get_many", "set_many"]
