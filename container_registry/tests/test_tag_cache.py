from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings

from container_registry import tag_cache


def test_the_creation_times_of_a_thousand_tags_all_stay_cached(db):
    # Django's database cache keeps 300 entries by default: a large repository was never
    # warm and every listing read most dates from the registry again.
    created = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    names = [f"v{i}" for i in range(1000)]
    tag_cache.set_many(7, dict.fromkeys(names, created), digests=dict.fromkeys(names, "sha256:abc"))

    found = tag_cache.get_many(7, names, digests=dict.fromkeys(names, "sha256:abc"))

    assert len(found) == 1000
    assert set(found.values()) == {created}


def test_a_cached_date_is_not_used_for_another_digest(db):
    created = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    tag_cache.set_many(7, {"v1": created}, digests={"v1": "sha256:old"})

    assert tag_cache.get_many(7, ["v1"], digests={"v1": "sha256:new"}) == {}
    assert tag_cache.get_many(7, ["v1"], digests={"v1": "sha256:old"}) == {"v1": created}


@pytest.mark.skipif(not settings.CACHE_URL, reason="Redis caches only (second pass of scripts/test.sh)")
def test_forget_soon_deletes_queued_keys_in_the_background_on_redis():
    created = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    tag_cache.set_many(8, {f"v{i}": created for i in range(20)})
    for i in range(20):
        tag_cache.forget_soon(8, [f"v{i}"])
    assert tag_cache.flush_forgets()
    assert tag_cache.get_many(8, [f"v{i}" for i in range(20)]) == {}


def test_a_full_forget_queue_drops_keys_with_a_warning(monkeypatch, caplog):
    forgetter = tag_cache._Forgetter()
    monkeypatch.setattr(tag_cache, "MAX_QUEUED_KEYS", 3)
    monkeypatch.setattr(tag_cache, "BATCH_DELAY_SECONDS", 0.3)  # nothing drains meanwhile
    deleted = []
    monkeypatch.setattr(tag_cache, "_delete", deleted.extend)
    forgetter.add(["a", "b"])
    forgetter.add(["c", "d", "e"])
    assert forgetter.flush(5)
    assert "2 keys dropped" in caplog.text
    assert deleted == ["a", "b", "c"]
