"""The cleanup-policy service and the RE2 helpers it validates with."""

from __future__ import annotations

import pytest

from container_registry.models import ContainerExpirationPolicy
from container_registry.policies import update_cleanup_policy
from container_registry.regex import compile_anchored, validate_regex
from gitlab_core.errors import ServiceError

pytestmark = pytest.mark.django_db


def test_valid_and_invalid_re2_patterns():
    for pattern in ("master", ".*", "v.+", "v10.1.*", "(?:v.+|master|release)"):
        assert validate_regex(pattern) is None, pattern
    assert "missing ]" in validate_regex("[")
    assert validate_regex("(?:v.+|master|release") is not None
    # RE2 has no look-around or back-references.
    assert validate_regex("(?=v)") is not None
    assert validate_regex(r"(a)\1") is not None


def test_anchored_match_is_a_full_match_of_the_whole_alternation():
    regex = compile_anchored("a|b")
    assert regex.matches("a") and regex.matches("b")
    assert not regex.matches("ab") and not regex.matches("xa") and not regex.matches("bx")
    assert compile_anchored("v.+").matches("v1.2") and not compile_anchored("v.+").matches("xv1")
    assert not compile_anchored("latest").matches("latest\n")
    with pytest.raises(ValueError):
        compile_anchored("(")


def policy_error(world, attributes) -> ServiceError:
    with pytest.raises(ServiceError) as excinfo:
        update_cleanup_policy(project=world["project"], attributes=attributes)
    return excinfo.value


@pytest.mark.parametrize(
    ("attributes", "body"),
    [
        ({"cadence": "2d"}, {"message": {"container_expiration_policy.cadence": ["is not included in the list"]}}),
        ({"keep_n": 3}, {"message": {"container_expiration_policy.keep_n": ["is not included in the list"]}}),
        ({"keep_n": "many"}, {"error": "container_expiration_policy_attributes[keep_n] is invalid"}),
        (
            {"older_than": "1y"},
            {"message": {"container_expiration_policy.older_than": ["is not included in the list"]}},
        ),
        ({"enabled": "perhaps"}, {"error": "container_expiration_policy_attributes[enabled] is invalid"}),
        (
            {"name_regex": "["},
            {"message": {"container_expiration_policy.name_regex": ["not valid RE2 syntax: missing ]: ["]}},
        ),
        ({"name_regex_keep": "(?=x)"}, None),
        (
            {"enabled": True, "name_regex": "  "},
            {"message": {"container_expiration_policy.name_regex": ["can't be blank"]}},
        ),
        (
            {"enabled": True, "name_regex": None},
            {"message": {"container_expiration_policy.name_regex": ["can't be blank"]}},
        ),
        ({"name_regex": "x" * 256}, None),
    ],
)
def test_invalid_attributes_change_nothing(world, attributes, body):
    before = ContainerExpirationPolicy.objects.filter(project=world["project"]).values().get()
    error = policy_error(world, attributes)
    assert error.status == 400
    if body is not None:
        assert error.body == body
    assert ContainerExpirationPolicy.objects.filter(project=world["project"]).values().get() == before


def test_partial_update_keeps_other_values_and_allows_nulls(world):
    policy = update_cleanup_policy(
        project=world["project"], attributes={"keep_n": None, "older_than": None, "name_regex_keep": None, "junk": 1}
    )
    assert (policy.keep_n, policy.older_than, policy.name_regex_keep, policy.cadence) == (None, None, None, "1d")


def test_form_style_strings_are_understood(world):
    policy = update_cleanup_policy(
        project=world["project"], attributes={"enabled": "true", "keep_n": "25", "cadence": "1month"}
    )
    assert (policy.enabled, policy.keep_n, policy.cadence) == (True, 25, "1month")


def test_enabling_a_policy_that_holds_an_invalid_regex_is_refused(world):
    ContainerExpirationPolicy.objects.filter(project=world["project"]).update(name_regex_keep="(")
    error = policy_error(world, {"enabled": True})
    assert "container_expiration_policy.name_regex_keep" in error.body["message"]


def test_saving_moves_next_run_at_by_the_cadence(world):
    policy = update_cleanup_policy(project=world["project"], attributes={"cadence": "7d", "enabled": True})
    delta = policy.next_run_at - policy.updated_at
    assert 6.99 < delta.total_seconds() / 86400 < 7.01
