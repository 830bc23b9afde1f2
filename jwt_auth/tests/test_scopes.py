from __future__ import annotations

import time

import pytest

from jwt_auth.scopes import parse_scope, scopes_from_query_string
from projects.image_paths import candidate_project_paths
from projects.image_paths import valid_image_path as valid_path


def test_repeated_and_space_separated_scopes_are_all_collected():
    query = "service=container_registry&scope=repository:a/b:pull&scope=repository:c/d:push+registry:catalog:*"
    assert scopes_from_query_string(query) == [
        "repository:a/b:pull",
        "repository:c/d:push",
        "registry:catalog:*",
    ]


def test_blank_scope_parameters_give_no_scopes():
    assert scopes_from_query_string("service=container_registry&scope=&scope=%20") == []


def test_percent_encoded_scope_is_decoded():
    assert scopes_from_query_string("scope=repository%3Aa%2Fb%3Apull%2Cpush") == ["repository:a/b:pull,push"]


@pytest.mark.parametrize(
    "text",
    ["repository", "repository:group/project", ":a/b:pull", "repository::pull", "repository:a/b:", "repository:a/b:,"],
)
def test_malformed_scopes_are_rejected(text):
    assert parse_scope(text) is None


def test_scope_is_split_in_three_fields_like_gitlab():
    scope = parse_scope("repository:a/b:pull,push:x")
    assert (scope.type, scope.name, scope.actions) == ("repository", "a/b", ("pull", "push:x"))


@pytest.mark.parametrize(
    "path,valid",
    [
        ("some/path", True),
        ("my/repository__name", True),
        ("a/b.c/d-e/f_g", True),
        ("a/b--c", True),
        ("something/", False),
        ("something", False),
        ("some\\path", False),
        ("some/registry-.name", False),
        ("some/registry._name", False),
        ("some//path", False),
        ("/".join(["a"] * 19), True),
        ("/".join(["a"] * 20), False),
        ("/".join(["a"] * 22), False),
        ("a/" + "b" * 300, False),
    ],
)
def test_paths_follow_gitlabs_rule(path, valid):
    assert valid_path(path) is valid


def test_path_check_does_not_backtrack_on_hostile_input():
    hostile = "a/" + "a" * 200 + "!"
    started = time.monotonic()
    assert valid_path(hostile) is False
    assert time.monotonic() - started < 0.1


def test_an_image_may_sit_at_most_two_levels_below_its_project():
    assert candidate_project_paths("g/p") == ["g/p"]
    assert candidate_project_paths("g/p/a/b") == ["g/p/a/b", "g/p/a", "g/p"]
    assert candidate_project_paths("g/s/p/a/b") == ["g/s/p/a/b", "g/s/p/a", "g/s/p"]
