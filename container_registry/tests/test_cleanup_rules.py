"""The cleanup rules and the plan, as pure functions (no database, no registry)."""

from __future__ import annotations

import datetime as dt

import pytest

from container_registry.cleanup_rules import (
    RULE_CREATED_AT_UNKNOWN,
    RULE_KEEP_N,
    RULE_LATEST,
    RULE_NAME_REGEX_DELETE,
    RULE_NAME_REGEX_KEEP,
    RULE_OLDER_THAN,
    CleanupRules,
    InvalidCleanupRules,
    deletion_order,
    kept_until,
    limit_deletions,
    parse_older_than,
    plan_tags,
)

NOW = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


def decisions(tags, **rules):
    return {d.name: (d.decision, d.rule) for d in plan_tags(tags, CleanupRules(**rules), now=NOW)}


def deleted(tags, **rules):
    return sorted(d.name for d in plan_tags(tags, CleanupRules(**rules), now=NOW) if d.delete)


def test_latest_is_never_deleted_even_when_everything_matches():
    tags = {"latest": days_ago(400), "v1": days_ago(400)}
    assert decisions(tags, name_regex_delete=".*", older_than="7d") == {
        "latest": ("keep", RULE_LATEST),
        "v1": ("delete", RULE_OLDER_THAN),
    }


def test_without_a_delete_regex_nothing_is_deleted():
    tags = {"a": days_ago(100), "b": days_ago(100)}
    assert deleted(tags, older_than="7d") == []
    assert decisions(tags, name_regex_delete="  ")["a"] == ("keep", RULE_NAME_REGEX_DELETE)


def test_delete_regex_must_match_the_whole_name():
    tags = {"v1": None, "v10": None, "xv1": None, "v1-rc": None}
    assert deleted(tags, name_regex_delete="v1") == ["v1"]
    assert deleted(tags, name_regex_delete="v1.*") == ["v1", "v1-rc", "v10"]


def test_alternation_is_anchored_as_a_group():
    # GitLab's ungrouped \AC|D\z would also delete "CX" and "XD"; we anchor (?:C|D).
    tags = {"C": None, "D": None, "CX": None, "XD": None}
    assert deleted(tags, name_regex_delete="C|D") == ["C", "D"]


def test_keep_regex_wins_over_delete_regex():
    tags = {"v1": days_ago(100), "main": days_ago(100), "release-1": days_ago(100)}
    result = decisions(tags, name_regex_delete=".*", name_regex_keep="main|release-.*")
    assert result == {
        "main": ("keep", RULE_NAME_REGEX_KEEP),
        "release-1": ("keep", RULE_NAME_REGEX_KEEP),
        "v1": ("delete", RULE_NAME_REGEX_DELETE),
    }


def test_keep_n_keeps_the_newest_candidates():
    tags = {f"t{i}": days_ago(i) for i in range(1, 7)}
    result = decisions(tags, name_regex_delete=".*", keep_n=2)
    assert [n for n, (d, _) in sorted(result.items()) if d == "keep"] == ["t1", "t2"]
    assert result["t6"] == ("delete", RULE_KEEP_N)
    assert result["t1"] == ("keep", RULE_KEEP_N)


def test_keep_n_counts_tags_kept_by_name_out():
    # latest and the keep-regex tags do not use up keep_n places.
    tags = {"latest": days_ago(0), "main": days_ago(0), "a": days_ago(3), "b": days_ago(2), "c": days_ago(1)}
    assert deleted(tags, name_regex_delete=".*", name_regex_keep="main", keep_n=2) == ["a"]


def test_keep_n_treats_an_unknown_creation_time_as_newest():
    tags = {"dated": days_ago(1), "undated": None}
    assert decisions(tags, name_regex_delete=".*", keep_n=1) == {
        "undated": ("keep", RULE_KEEP_N),
        "dated": ("delete", RULE_KEEP_N),
    }


def test_older_than_keeps_younger_tags_and_deletes_strictly_older_ones():
    tags = {"old": days_ago(8), "young": days_ago(6), "edge": days_ago(7)}
    result = decisions(tags, name_regex_delete=".*", older_than="7d")
    assert result == {
        "old": ("delete", RULE_OLDER_THAN),
        "young": ("keep", RULE_OLDER_THAN),
        "edge": ("keep", RULE_OLDER_THAN),
    }


def test_older_than_keeps_tags_without_a_creation_time():
    tags = {"undated": None, "old": days_ago(100)}
    assert decisions(tags, name_regex_delete=".*", older_than="30d") == {
        "undated": ("keep", RULE_CREATED_AT_UNKNOWN),
        "old": ("delete", RULE_OLDER_THAN),
    }


def test_keep_n_applies_before_older_than():
    # The 2 newest are kept whatever their age; of the rest only those older than 30d go.
    tags = {"a": days_ago(100), "b": days_ago(90), "c": days_ago(60), "d": days_ago(10), "e": days_ago(5)}
    result = decisions(tags, name_regex_delete=".*", keep_n=2, older_than="30d")
    assert result["d"] == ("keep", RULE_KEEP_N) and result["e"] == ("keep", RULE_KEEP_N)
    assert deleted(tags, name_regex_delete=".*", keep_n=2, older_than="30d") == ["a", "b", "c"]
    # With keep_n=4, "a" is the only one outside the newest 4, and it is old.
    assert deleted(tags, name_regex_delete=".*", keep_n=4, older_than="30d") == ["a"]
    # Old tags kept by keep_n stay even though they are older than the limit.
    assert deleted(tags, name_regex_delete=".*", keep_n=5, older_than="1d") == []


def test_every_rule_together():
    tags = {
        "latest": days_ago(365),
        "main": days_ago(365),
        "feature-x": days_ago(365),
        "v1": days_ago(200),
        "v2": days_ago(100),
        "v3": days_ago(50),
        "v4": days_ago(3),
        "v5": None,
    }
    result = decisions(tags, name_regex_delete="v.*|feature-.*", name_regex_keep="main", keep_n=1, older_than="60d")
    assert result == {
        "latest": ("keep", RULE_LATEST),
        "main": ("keep", RULE_NAME_REGEX_DELETE),
        "feature-x": ("delete", RULE_OLDER_THAN),
        "v1": ("delete", RULE_OLDER_THAN),
        "v2": ("delete", RULE_OLDER_THAN),
        "v3": ("keep", RULE_OLDER_THAN),
        "v4": ("keep", RULE_OLDER_THAN),
        "v5": ("keep", RULE_KEEP_N),
    }


def test_plan_lists_every_tag_once_sorted_by_name_with_a_reason():
    tags = {"b": days_ago(10), "a": days_ago(20), "latest": None}
    plan = plan_tags(tags, CleanupRules(name_regex_delete=".*", older_than="14d"), now=NOW)
    assert [d.name for d in plan] == ["a", "b", "latest"]
    assert all(d.reason for d in plan)
    assert plan[0].reason == "older than 14d" and plan[0].created_at == days_ago(20)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", dt.timedelta(hours=1)),
        ("2d", dt.timedelta(days=2)),
        ("90d", dt.timedelta(days=90)),
        ("1w", dt.timedelta(weeks=1)),
        ("1month", dt.timedelta(days=30)),
        ("3months", dt.timedelta(days=90)),
        ("1y", dt.timedelta(days=365)),
        ("10 days", dt.timedelta(days=10)),
        (None, None),
        ("", None),
    ],
)
def test_older_than_durations(text, expected):
    assert parse_older_than(text) == expected


@pytest.mark.parametrize("text", ["1", "d", "1x", "-1d", "1.5d", "forever"])
def test_unparseable_older_than_is_rejected(text):
    with pytest.raises(ValueError):
        parse_older_than(text)


def test_invalid_rules_name_the_bad_parameter():
    with pytest.raises(InvalidCleanupRules, match="name_regex_delete"):
        CleanupRules(name_regex_delete="[").compile()
    with pytest.raises(InvalidCleanupRules, match="name_regex_keep"):
        CleanupRules(name_regex_delete=".*", name_regex_keep="(?=x)").compile()
    with pytest.raises(InvalidCleanupRules, match="older_than"):
        CleanupRules(name_regex_delete=".*", older_than="soon").compile()


def test_deletion_order_is_oldest_first_with_unknown_times_last():
    tags = {"new": days_ago(10), "old": days_ago(50), "mid": days_ago(30)}
    plan = plan_tags({**tags, "undated": None}, CleanupRules(name_regex_delete=".*"), now=NOW)
    assert [d.name for d in deletion_order(plan)] == ["old", "mid", "new", "undated"]


@pytest.mark.parametrize(
    ("max_list_size", "expected"),
    [(0, (["a", "b", "c"], False)), (2, (["a", "b"], True)), (3, (["a", "b", "c"], False))],
)
def test_a_run_deletes_at_most_max_list_size_tags_and_says_when_it_cut(max_list_size, expected):
    assert limit_deletions(["a", "b", "c"], max_list_size) == expected


def test_kept_tags_are_remembered_only_while_older_than_still_keeps_them():
    compiled = CleanupRules(name_regex_delete=".*", older_than="30d").compile()
    plan = plan_tags({"young": days_ago(10), "old": days_ago(40), "undated": None}, compiled, now=NOW)

    assert kept_until(plan, compiled, now=NOW) == {20 * 86400: {"young": days_ago(10)}}


def test_nothing_is_remembered_without_older_than():
    compiled = CleanupRules(name_regex_delete=".*", keep_n=1).compile()
    plan = plan_tags({"a": days_ago(1), "b": days_ago(2)}, compiled, now=NOW)

    assert kept_until(plan, compiled, now=NOW) == {}


def test_the_rules_module_reads_no_database_registry_or_cache():
    import ast
    from pathlib import Path

    import container_registry.cleanup_rules as rules_module

    tree = ast.parse(Path(rules_module.__file__).read_text(encoding="utf-8"))
    # Module-level imports only: the model is named for type hints under TYPE_CHECKING.
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }

    pure = {"__future__", "datetime", "re", "collections.abc", "dataclasses", "typing", "container_registry.regex"}
    assert imported <= pure
