"""Per-process caches with a lifetime and a bound in entries and in bytes.

Every in-process cache with a lifetime is a ``TTLCache``: the realm's decisions, the
token duration setting, nested user tokens, signing keys, known repository rows and the
registry client's tokens and config dates (values that never change and are few, such
as an encoded JWS header, use a bounded ``functools.lru_cache``). Each is bounded
twice, in entries and in estimated bytes, so that no request (a refusal, a long scope
list) can grow a process without end: an entry larger than ``max_item_bytes`` is not kept, and the oldest entries
make room for new ones. State shared between processes goes through Django's cache API,
never through these.

``clear()`` also starts a new *generation*: a value computed from data read before a
clear (``generation`` taken before the read, passed to ``set``) is not kept, so a change
committed while the value was being computed is not outlived.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

MISSING: Any = object()

# Containers are walked this deep when estimating sizes; deeper parts count as flat.
_SIZE_DEPTH = 4


def estimate_size(value: Any, _depth: int = 0) -> int:
    """Approximate bytes held by ``value``: ``sys.getsizeof`` of it and of what its
    tuples, lists, sets, dicts and dataclass fields hold (a few levels deep)."""
    size = sys.getsizeof(value)
    if _depth >= _SIZE_DEPTH:
        return size
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return size
    if isinstance(value, dict):
        return size + sum(estimate_size(k, _depth + 1) + estimate_size(v, _depth + 1) for k, v in value.items())
    if isinstance(value, (tuple, list, set, frozenset)):
        return size + sum(estimate_size(item, _depth + 1) for item in value)
    fields = getattr(value, "__dataclass_fields__", None)
    if fields:
        return size + sum(estimate_size(getattr(value, name), _depth + 1) for name in fields)
    return size


class TTLCache:
    """A thread-safe mapping whose entries expire ``ttl`` seconds after they are set.

    ``ttl`` is seconds, a callable returning seconds (read at each ``set``, so settings
    overridden in tests apply), or None for entries that never expire (only evicted).
    A ttl of 0 or less keeps nothing. ``max_entries`` and ``max_bytes`` bound the cache;
    ``max_item_bytes`` (default ``max_bytes``) refuses larger single entries. Sizes are
    ``estimate_size(key) + estimate_size(value)`` unless ``set`` is given ``size``.
    """

    def __init__(
        self,
        *,
        ttl: float | Callable[[], float] | None,
        max_entries: int,
        max_bytes: int,
        max_item_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("max_entries and max_bytes must be positive")
        self._ttl = ttl
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_item_bytes = max_bytes if max_item_bytes is None else min(max_item_bytes, max_bytes)
        self._clock = clock
        self._lock = threading.Lock()
        # key -> (value, expires_at, size), oldest first.
        self._entries: OrderedDict[Hashable, tuple[Any, float, int]] = OrderedDict()
        self._bytes = 0
        self._generation = 0

    def ttl(self) -> float | None:
        """The lifetime new entries get, in seconds (None: no expiry)."""
        return self._ttl() if callable(self._ttl) else self._ttl

    @property
    def generation(self) -> int:
        """Changes at every ``clear()``; take it before reading what a value is made of."""
        return self._generation

    @property
    def nbytes(self) -> int:
        """Estimated bytes held by the entries, expired ones included until dropped."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` when it is missing or expired."""
        entry = self._entries.get(key)
        if entry is None or entry[1] <= self._clock():
            return default
        return entry[0]

    def set(
        self,
        key: Hashable,
        value: Any,
        *,
        size: int | None = None,
        expires_at: float | None = None,
        generation: int | None = None,
    ) -> bool:
        """Keep ``value`` under ``key`` until ``expires_at`` (on this cache's clock;
        default: now + ``ttl``). Returns False, keeping nothing, when the ttl is 0 or
        less, the entry is larger than ``max_item_bytes``, or the cache was cleared
        since ``generation`` was taken."""
        if expires_at is None:
            ttl = self.ttl()
            if ttl is not None and ttl <= 0:
                return False
            expires_at = float("inf") if ttl is None else self._clock() + ttl
        if size is None:
            size = estimate_size(key) + estimate_size(value)
        if size > self.max_item_bytes:
            return False
        with self._lock:
            if generation is not None and generation != self._generation:
                return False
            self._discard(key)
            self._make_room(size)
            self._entries[key] = (value, expires_at, size)
            self._bytes += size
        return True

    def pop(self, key: Hashable) -> None:
        """Forget ``key`` (nothing happens when it is not there)."""
        with self._lock:
            self._discard(key)

    def clear(self, **_signal_kwargs: Any) -> None:
        """Forget everything and start a new generation. Accepts a signal's arguments,
        so it can be connected to one directly."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
            self._bytes = 0

    def _discard(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[2]

    def _make_room(self, size: int) -> None:
        # Oldest first: expired entries at the front, then live ones while over a bound
        # (with one ttl per cache the oldest are also the next to expire).
        now = self._clock()
        while self._entries:
            _key, (_value, expires_at, old_size) = next(iter(self._entries.items()))
            full = len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes
            if not full and expires_at > now:
                return
            self._entries.popitem(last=False)
            self._bytes -= old_size
