from __future__ import annotations

import datetime as dt

import pytest
from django.core.cache import cache

from container_registry import tag_cache

CREATED = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def _empty_cache(db):
    cache.clear()
    yield
    cache.clear()


def test_the_creation_times_of_a_thousand_tags_all_stay_cached():
    # Django's database cache keeps 300 entries by default: a large repository was never
    # warm and every listing read most dates from the registry again.
    names = [f"v{i}" for i in range(1000)]
    tag_cache.set_many(7, dict.fromkeys(names, CREATED))

    found = tag_cache.get_many(7, names)

    assert len(found) == 1000
    assert set(found.values()) == {CREATED}


def test_unknown_dates_are_not_cached_and_repositories_do_not_share_entries():
    tag_cache.set_many(7, {"v1": CREATED, "v2": None})

    assert tag_cache.get_many(7, ["v1", "v2", "v3"]) == {"v1": CREATED}
    assert tag_cache.get_many(8, ["v1"]) == {}


def test_forget_drops_only_the_named_tags_at_once():
    tag_cache.set_many(8, {f"v{i}": CREATED for i in range(20)})

    tag_cache.forget(8, [f"v{i}" for i in range(10)])

    assert sorted(tag_cache.get_many(8, [f"v{i}" for i in range(20)])) == sorted(f"v{i}" for i in range(10, 20))


def test_entries_written_by_the_previous_version_are_still_read():
    cache.set(tag_cache._key(9, "v1"), ("sha256:abc", CREATED.timestamp()))
    assert tag_cache.get_many(9, ["v1"]) == {"v1": CREATED}


def test_an_entry_expires_with_its_ttl():
    tag_cache.set_many(10, {"v1": CREATED}, ttl_seconds=1)
    assert tag_cache.get_many(10, ["v1"]) == {"v1": CREATED}
    tag_cache.set_many(10, {"v1": CREATED}, ttl_seconds=-1)  # Django: a negative timeout expires at once
    assert tag_cache.get_many(10, ["v1"]) == {}


def test_the_dates_of_a_cleanup_come_back_exactly_while_nothing_was_pushed():
    dates = {"a": CREATED + dt.timedelta(microseconds=123457), "b": None, "c": CREATED - dt.timedelta(days=9000)}
    tag_cache.set_run_dates(7, dates, push_count=3)

    assert tag_cache.get_run_dates(7, push_count=3) == dates
    assert tag_cache.get_run_dates(7, push_count=4) == {}  # pushed to since
    assert tag_cache.get_run_dates(8, push_count=3) == {}
    tag_cache.forget_run_dates(7)
    assert tag_cache.get_run_dates(7, push_count=3) == {}


def test_the_dates_of_a_cleanup_are_one_bounded_entry(monkeypatch):
    names = [f"build-{i:06d}" for i in range(10_000)]
    tag_cache.set_run_dates(7, {n: CREATED + dt.timedelta(seconds=i) for i, n in enumerate(names)}, push_count=0)
    raw = cache.get("cr:cleanup-dates:7")
    assert len(raw) < 10_000 * 12  # compressed: well under the names and dates in full
    assert len(tag_cache.get_run_dates(7, push_count=0)) == 10_000

    monkeypatch.setattr(tag_cache, "MAX_RUN_DATES", 100)
    tag_cache.set_run_dates(7, dict.fromkeys(names[:101], CREATED), push_count=0)
    assert tag_cache.get_run_dates(7, push_count=0) == {}


def test_caching_dates_marks_the_repository_until_the_longest_lifetime(captured_world):
    from django.utils import timezone

    from container_registry.models import ContainerRepository

    repository = ContainerRepository.objects.create(project=captured_world["project"], name="image")
    before = timezone.now()
    tag_cache.remember(repository.pk, {60: {"a": CREATED}, 3600: {"b": CREATED}, 7200: {"c": None}})

    repository.refresh_from_db()
    # "c" has no date, so its lifetime marks nothing: the longest kept entry lives an hour.
    assert before + dt.timedelta(seconds=3600) <= repository.tag_dates_cached_until
    assert repository.tag_dates_cached_until <= timezone.now() + dt.timedelta(seconds=3600)
    assert set(tag_cache.get_many(repository.pk, ["a", "b", "c"])) == {"a", "b"}
    # A later, shorter caching never moves the mark back.
    tag_cache.set_many(repository.pk, {"d": CREATED}, 60)
    assert ContainerRepository.objects.get(pk=repository.pk).tag_dates_cached_until == repository.tag_dates_cached_until
