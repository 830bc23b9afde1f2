"""Direct access to the Redis client behind Django's cache, for the hot paths.

Django's Redis backend builds a new client object (and its table of ~170 response
callbacks) on every call, which costs more than the round trip itself. The client made
here once per backend instance uses the same connection pool and the same key scheme.
"""

from __future__ import annotations

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache


def redis_client():
    """``(client, backend)`` for the default cache; ``client`` is None when the cache is
    not Redis (then use the ``backend``'s own methods)."""
    backend = caches["default"]
    if not isinstance(backend, RedisCache):
        return None, backend
    client = backend.__dict__.get("_raw_redis_client")
    if client is None:
        client = backend.__dict__["_raw_redis_client"] = backend._cache.get_client()
    return client, backend
