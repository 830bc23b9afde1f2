from __future__ import annotations

import datetime as dt

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
