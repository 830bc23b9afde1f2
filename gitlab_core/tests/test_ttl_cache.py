"""The per-process cache every in-process cache is built on."""

from __future__ import annotations

import threading

import pytest

from gitlab_core.ttl_cache import MISSING, TTLCache, estimate_size


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def test_an_entry_is_served_until_its_ttl_passes(clock):
    cache = TTLCache(ttl=2, max_entries=10, max_bytes=10_000, clock=clock)
    cache.set("k", "v")
    clock.now += 1.9
    assert cache.get("k") == "v"
    clock.now += 0.1
    assert cache.get("k") is None
    assert cache.get("k", MISSING) is MISSING


def test_an_explicit_expiry_wins_over_the_ttl(clock):
    cache = TTLCache(ttl=60, max_entries=10, max_bytes=10_000, clock=clock)
    cache.set("k", "v", expires_at=clock.now + 0.5)
    clock.now += 0.6
    assert cache.get("k") is None


def test_a_ttl_read_from_a_callable_applies_to_each_new_entry(clock):
    seconds = {"value": 5.0}
    cache = TTLCache(ttl=lambda: seconds["value"], max_entries=10, max_bytes=10_000, clock=clock)
    cache.set("five", 1)
    seconds["value"] = 0
    assert cache.set("off", 1) is False
    clock.now += 4
    assert cache.get("five") == 1
    assert cache.get("off") is None


def test_entries_without_a_ttl_are_only_evicted(clock):
    cache = TTLCache(ttl=None, max_entries=2, max_bytes=10_000, clock=clock)
    cache.set("a", None)
    clock.now += 10**9
    assert cache.get("a", MISSING) is None  # a cached None is not a miss
    cache.set("b", 2)
    cache.set("c", 3)
    assert cache.get("a", MISSING) is MISSING


def test_the_oldest_entries_make_room_beyond_max_entries(clock):
    cache = TTLCache(ttl=60, max_entries=3, max_bytes=10**6, clock=clock)
    for i in range(5):
        cache.set(i, i)
    assert len(cache) == 3
    assert [cache.get(i) for i in range(5)] == [None, None, 2, 3, 4]


def test_the_byte_bound_holds_whatever_the_entry_count(clock):
    cache = TTLCache(ttl=60, max_entries=10_000, max_bytes=10_000, clock=clock)
    for i in range(1000):
        assert cache.set(i, "x" * 500)
    assert cache.nbytes <= 10_000
    assert 0 < len(cache) < 20
    assert cache.get(999) == "x" * 500


def test_a_huge_value_is_refused_and_evicts_nothing(clock):
    cache = TTLCache(ttl=60, max_entries=100, max_bytes=100_000, max_item_bytes=1_000, clock=clock)
    cache.set("small", "s")
    assert cache.set("huge", ["scope"] * 10_000) is False
    assert cache.get("huge") is None
    assert cache.get("small") == "s"


def test_a_value_larger_than_the_whole_cache_is_refused(clock):
    cache = TTLCache(ttl=60, max_entries=100, max_bytes=1_000, clock=clock)
    assert cache.set("huge", "x" * 2_000) is False
    assert len(cache) == 0 and cache.nbytes == 0


def test_replacing_and_popping_keep_the_byte_count_exact(clock):
    cache = TTLCache(ttl=60, max_entries=100, max_bytes=100_000, clock=clock)
    cache.set("k", "x" * 1000)
    cache.set("k", "y", size=10)
    assert cache.nbytes == 10
    cache.pop("k")
    cache.pop("absent")
    assert cache.nbytes == 0 and len(cache) == 0


def test_expired_entries_are_dropped_before_live_ones(clock):
    cache = TTLCache(ttl=60, max_entries=2, max_bytes=10**6, clock=clock)
    cache.set("old", 1, expires_at=clock.now + 1)
    cache.set("live", 2)
    clock.now += 2
    cache.set("new", 3)
    assert cache.get("live") == 2 and cache.get("new") == 3


def test_a_value_computed_before_a_clear_is_not_kept(clock):
    cache = TTLCache(ttl=60, max_entries=10, max_bytes=10_000, clock=clock)
    generation = cache.generation
    cache.clear()
    assert cache.set("k", "stale", generation=generation) is False
    assert cache.get("k") is None
    assert cache.set("k", "fresh", generation=cache.generation) is True
    assert cache.get("k") == "fresh"


def test_clear_accepts_signal_arguments():
    cache = TTLCache(ttl=60, max_entries=10, max_bytes=10_000)
    cache.set("k", 1)
    cache.clear(sender=object(), signal=None)
    assert cache.get("k") is None


def test_estimated_sizes_grow_with_the_contents():
    small = {"type": "repository", "name": "a", "actions": ["pull"]}
    large = {"type": "repository", "name": "a" * 1000, "actions": ["pull", "push"]}
    assert estimate_size(large) > estimate_size(small) + 1000
    assert estimate_size((small,) * 50) > 50 * estimate_size("repository")


def test_concurrent_writers_keep_both_bounds():
    cache = TTLCache(ttl=60, max_entries=50, max_bytes=20_000)
    errors = []

    def write(offset: int) -> None:
        try:
            for i in range(2000):
                cache.set((offset, i), "v" * (i % 300))
                cache.get((offset, i - 1))
                if i % 97 == 0:
                    cache.pop((offset, i - 5))
        except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 50
    assert cache.nbytes <= 20_000
    assert cache.nbytes == sum(size for _v, _e, size in cache._entries.values())
