"""The cleanup service: limits, caching, faults and what it reports.

``FakeRegistryClient`` stands in for the HTTP registry client so that the tests can
control time (the deletion budget) and make the registry fail at an exact point of a
run, which the real registry cannot do on cue. The same behaviour is checked against the
real registry in ``test_cleanup_e2e.py``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
from django.db.models import F

from container_registry import cleanup
from container_registry.cleanup import bulk_delete_for_user, cleanup_tags, plan_cleanup
from container_registry.cleanup_rules import CleanupRules
from container_registry.errors import TooManyTags, TransientRegistryError
from container_registry.models import ContainerRepository
from gitlab_core.models import ApplicationSettings

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


class FakeRegistryClient:
    """Tags of one repository in memory, with the registry client's interface."""

    def __init__(self, tags: dict[str, dt.datetime | None]):
        self.tags = dict(tags)
        self.calls: Counter[str] = Counter()
        self.fail_on_delete_call: int | None = None

    def list_tags(self, path: str, *, limit: int | None = None) -> list[str]:
        self.calls["list_tags"] += 1
        if limit is not None and len(self.tags) > limit:
            raise TooManyTags(path, limit)
        return sorted(self.tags)

    def tag_created_at(self, path: str, tag: str) -> dt.datetime | None:
        self.calls["created_at"] += 1
        return self.tags.get(tag)

    def delete_tags(self, path: str, tags: list[str]) -> list[str]:
        self.calls["delete_tags"] += 1
        if self.calls["delete_tags"] == self.fail_on_delete_call:
            raise TransientRegistryError(f"DELETE /v2/{path}/manifests: ConnectionError")
        gone = [t for t in tags if t in self.tags]
        for tag in gone:
            del self.tags[tag]
        return gone


@pytest.fixture
def repository(world):
    return ContainerRepository.objects.create(project=world["project"], name="app")


@pytest.fixture
def app_settings(db):
    return ApplicationSettings.current()


def old_tags(count: int, prefix: str = "t") -> dict[str, dt.datetime]:
    return {f"{prefix}{i:03d}": days_ago(100 + i) for i in range(count)}


def test_run_deletes_what_the_plan_says_and_reports_sizes(repository):
    client = FakeRegistryClient({"latest": days_ago(200), "keep-me": days_ago(200), **old_tags(3), "new": days_ago(1)})
    rules = CleanupRules(name_regex_delete=".*", name_regex_keep="keep-.*", older_than="30d")
    result = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert result.finished and result.stop_reason == "finished"
    assert sorted(result.deleted) == ["t000", "t001", "t002"]
    assert sorted(client.tags) == ["keep-me", "latest", "new"]
    assert (result.original_size, result.candidates_size, result.before_delete_size) == (6, 4, 3)


def test_without_age_rules_no_creation_time_is_read(repository):
    client = FakeRegistryClient(old_tags(5))
    cleanup_tags(
        repository=repository, rules=CleanupRules(name_regex_delete="t00[0-2]"), policy_run=True, client=client
    )
    assert client.calls["created_at"] == 0
    assert sorted(client.tags) == ["t003", "t004"]


def test_a_repository_larger_than_the_per_run_maximum_is_finished_over_several_runs(repository, app_settings):
    app_settings.container_registry_cleanup_tags_service_max_list_size = 10
    app_settings.save()
    client = FakeRegistryClient({**old_tags(25), "young": days_ago(1)})
    rules = CleanupRules(name_regex_delete=".*", older_than="7d")
    outcomes = []
    for _ in range(3):
        result = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
        outcomes.append((result.status, result.stop_reason, result.deleted_size))
    assert outcomes == [
        ("unfinished", "tags_limit", 10),
        ("unfinished", "tags_limit", 10),
        ("finished", "finished", 5),
    ]
    assert sorted(client.tags) == ["young"]


def test_the_runs_of_one_cleanup_read_each_creation_time_once(repository, app_settings):
    app_settings.container_registry_cleanup_tags_service_max_list_size = 10
    app_settings.save()
    tags = {**old_tags(25), "young": days_ago(1)}
    client = FakeRegistryClient(tags)
    rules = CleanupRules(name_regex_delete=".*", keep_n=1)
    results = [cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)]
    while not results[-1].finished:
        results.append(cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW))
    assert [r.deleted_size for r in results] == [10, 10, 5]
    assert [r.cached_tags_count for r in results] == [0, 16, 6]
    assert client.calls["created_at"] == len(tags)
    assert sorted(client.tags) == ["young"]
    # The next cleanup starts from the registry again.
    client.tags.update(old_tags(3, prefix="n"))
    cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert client.calls["created_at"] == len(tags) + 4


def test_a_push_between_runs_makes_the_next_run_read_the_dates_again(repository, app_settings):
    app_settings.container_registry_cleanup_tags_service_max_list_size = 2
    app_settings.save()
    client = FakeRegistryClient({"a": days_ago(5), "b": days_ago(4), "c": days_ago(3), "d": days_ago(2)})
    rules = CleanupRules(name_regex_delete=".*", keep_n=1)
    cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert sorted(client.tags) == ["c", "d"]
    # "c" pushed again with a newer image; the event receiver counted the push.
    client.tags["c"] = days_ago(0.5)
    ContainerRepository.objects.filter(pk=repository.pk).update(push_count=F("push_count") + 1)
    result = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert (result.cached_tags_count, result.deleted) == (0, ["d"])
    assert client.calls["created_at"] == 6


def test_without_caching_every_run_reads_every_waiting_tag(repository, app_settings):
    app_settings.container_registry_cleanup_tags_service_max_list_size = 2
    app_settings.container_registry_expiration_policies_caching = False
    app_settings.save()
    client = FakeRegistryClient(old_tags(5))
    rules = CleanupRules(name_regex_delete=".*", keep_n=1)
    for _ in range(2):
        assert cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW).deleted_size
    assert client.calls["created_at"] == 5 + 3


def test_a_run_cut_short_by_the_time_budget_hands_its_dates_on(repository, app_settings, monkeypatch):
    app_settings.container_registry_delete_tags_service_timeout = 10
    app_settings.save()
    monkeypatch.setattr(cleanup, "DELETE_BATCH_SIZE", 2)
    monkeypatch.setattr(cleanup, "MAX_DELETE_ROUNDS", 100)
    ticks = iter(range(0, 1000, 6))
    client = FakeRegistryClient(old_tags(8))
    rules = CleanupRules(name_regex_delete=".*", keep_n=1)
    first = cleanup_tags(
        repository=repository, rules=rules, policy_run=True, client=client, now=NOW, clock=lambda: next(ticks)
    )
    assert first.stop_reason == "time_budget" and 0 < first.deleted_size < 7
    second = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert second.finished and second.cached_tags_count == len(client.tags) + second.deleted_size
    assert client.calls["created_at"] == 8


def test_runs_cut_short_by_the_maximum_delete_the_oldest_first(repository, app_settings):
    app_settings.container_registry_cleanup_tags_service_max_list_size = 4
    app_settings.save()
    tags = {f"v{i:02d}": days_ago(i) for i in range(1, 13)}  # v01 is the newest
    client = FakeRegistryClient(tags)
    rules = CleanupRules(name_regex_delete="v.*", keep_n=2)
    first = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert sorted(first.deleted) == ["v09", "v10", "v11", "v12"]
    assert first.before_delete_size == 10 and first.stop_reason == "tags_limit"
    cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    last = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert last.finished and sorted(last.deleted) == ["v03", "v04"]
    assert sorted(client.tags) == ["v01", "v02"]


def test_the_time_budget_stops_deletion_between_batches_oldest_first(repository, app_settings, monkeypatch):
    monkeypatch.setattr(cleanup, "DELETE_BATCH_SIZE", 2)
    app_settings.container_registry_delete_tags_service_timeout = 5
    app_settings.save()
    client = FakeRegistryClient(old_tags(6))
    ticks = iter(range(0, 1000, 2))  # every clock reading is 2 s later than the last
    rules = CleanupRules(name_regex_delete=".*", older_than="7d")
    result = cleanup_tags(
        repository=repository, rules=rules, policy_run=True, client=client, now=NOW, clock=lambda: next(ticks)
    )
    assert (result.status, result.stop_reason) == ("unfinished", "time_budget")
    # Two batches fit in the budget; the oldest tags (highest numbers) went first.
    assert sorted(result.deleted) == ["t002", "t003", "t004", "t005"]
    assert sorted(client.tags) == ["t000", "t001"]


def test_a_registry_fault_mid_run_keeps_what_was_deleted_and_ends_unfinished(repository, monkeypatch):
    monkeypatch.setattr(cleanup, "DELETE_BATCH_SIZE", 2)
    client = FakeRegistryClient(old_tags(6))
    client.fail_on_delete_call = 2
    result = cleanup_tags(
        repository=repository, rules=CleanupRules(name_regex_delete=".*"), policy_run=True, client=client
    )
    assert (result.status, result.stop_reason) == ("unfinished", "registry_error")
    assert isinstance(result.error, TransientRegistryError)
    assert result.deleted_size == 2 and len(client.tags) == 4


def test_policy_runs_cache_creation_times_of_kept_tags(repository, app_settings):
    client = FakeRegistryClient({"young1": days_ago(1), "young2": days_ago(2), "old": days_ago(100)})
    rules = CleanupRules(name_regex_delete=".*", older_than="30d")
    cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert client.calls["created_at"] == 3
    second = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
    assert second.cached_tags_count == 2
    assert client.calls["created_at"] == 3  # nothing read again


def test_caching_setting_off_reads_every_creation_time(repository, app_settings):
    app_settings.container_registry_expiration_policies_caching = False
    app_settings.save()
    client = FakeRegistryClient({"young1": days_ago(1), "young2": days_ago(2)})
    rules = CleanupRules(name_regex_delete=".*", older_than="30d")
    for _ in range(2):
        result = cleanup_tags(repository=repository, rules=rules, policy_run=True, client=client, now=NOW)
        assert result.cached_tags_count == 0
    assert client.calls["created_at"] == 4


def test_the_dry_run_deletes_nothing_and_ignores_the_per_run_maximum(repository, app_settings):
    app_settings.container_registry_cleanup_tags_service_max_list_size = 2
    app_settings.save()
    client = FakeRegistryClient({**old_tags(5), "latest": None})
    result = plan_cleanup(repository=repository, rules=CleanupRules(name_regex_delete=".*", keep_n=1), client=client)
    assert client.calls["delete_tags"] == 0 and len(client.tags) == 6
    assert [(d.name, d.decision, d.rule) for d in result.decisions] == [
        ("latest", "keep", "latest"),
        ("t000", "keep", "keep_n"),
        ("t001", "delete", "keep_n"),
        ("t002", "delete", "keep_n"),
        ("t003", "delete", "keep_n"),
        ("t004", "delete", "keep_n"),
    ]


def test_bulk_delete_runs_for_a_maintainer_and_never_deletes_latest(repository, world):
    client = FakeRegistryClient({"latest": days_ago(9), "a": days_ago(9), "b": days_ago(9)})
    result = bulk_delete_for_user(
        user_id=world["users"]["maintainer"].pk,
        repository_id=repository.pk,
        params={"name_regex_delete": ".*", "name_regex_keep": None, "keep_n": None, "older_than": "1d"},
        client=client,
    )
    assert sorted(result.deleted) == ["a", "b"] and list(client.tags) == ["latest"]


def test_bulk_delete_does_nothing_for_a_user_who_lost_access(repository, world):
    client = FakeRegistryClient({"a": days_ago(9)})
    params = {"name_regex_delete": ".*"}
    assert (
        bulk_delete_for_user(
            user_id=world["users"]["reporter"].pk, repository_id=repository.pk, params=params, client=client
        )
        is None
    )
    assert (
        bulk_delete_for_user(user_id=world["users"]["developer"].pk, repository_id=10**9, params=params, client=client)
        is None
    )
    assert list(client.tags) == ["a"]
