"""Changing a project's cleanup policy (``container_expiration_policy_attributes``).

Validation follows GitLab's project update endpoint: type errors of the request are ``{"error": ...}``,
values outside the allowed lists and bad regexes are model errors
``{"message": {"container_expiration_policy.<field>": [...]}}``. Regexes are checked
whenever they are sent, enabled or not, and the stored ones again when the resulting
policy is enabled.

Also what the scheduler asks of a stored policy: why it cannot run (``policy_problem``),
and turning it off with the reason recorded (``disable_policy``,
``disable_policies_without_repositories``).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef

from container_registry.models import (
    CADENCE_DURATIONS,
    KEEP_N_CHOICES,
    OLDER_THAN_CHOICES,
    ContainerExpirationPolicy,
    ContainerRepository,
)
from container_registry.regex import validate_regex
from gitlab_core import audit
from gitlab_core.api.params import parse_bool
from gitlab_core.errors import bad_request, invalid_params
from gitlab_core.text import clean_text
from projects.models import Project

logger = logging.getLogger(__name__)

REQUEST_PREFIX = "container_expiration_policy_attributes"
MODEL_PREFIX = "container_expiration_policy"
MAX_REGEX_LENGTH = 255
_NOT_IN_LIST = "is not included in the list"
# Why the scheduler disabled a policy (``ContainerExpirationPolicy.disabled_reason``).
DISABLED_INVALID = "invalid_policy"
DISABLED_NO_REPOSITORIES = "no_container_repositories"
# Policies disabled per UPDATE by ``disable_policies_without_repositories``.
DISABLE_BATCH_SIZE = 1000


class _Problems:
    def __init__(self) -> None:
        self.request: list[str] = []
        self.model: dict[str, list[str]] = {}

    def invalid(self, key: str) -> None:
        self.request.append(f"{REQUEST_PREFIX}[{key}] is invalid")

    def field(self, key: str, problem: str) -> None:
        self.model.setdefault(f"{MODEL_PREFIX}.{key}", []).append(problem)

    def raise_if_any(self) -> None:
        if self.request:
            raise invalid_params(*self.request)
        if self.model:
            raise bad_request(self.model)


def _read_regex(key: str, value: Any, problems: _Problems) -> str | None:
    if value is None:
        return None
    # A NUL or a lone surrogate cannot be stored (PostgreSQL refuses them).
    if not isinstance(value, str) or not clean_text(value):
        problems.invalid(key)
        return None
    if len(value) > MAX_REGEX_LENGTH:
        problems.field(key, f"is too long (maximum is {MAX_REGEX_LENGTH} characters)")
    elif value and (detail := validate_regex(value)) is not None:
        problems.field(key, f"not valid RE2 syntax: {detail}")
    return value


def _read_keep_n(value: Any, problems: _Problems) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        problems.invalid("keep_n")
        return None
    try:
        number = int(value)
    except ValueError:
        problems.invalid("keep_n")
        return None
    if number not in KEEP_N_CHOICES:
        problems.field("keep_n", _NOT_IN_LIST)
    return number


def _changes(attributes: dict, problems: _Problems) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "enabled" in attributes:
        enabled = parse_bool(attributes["enabled"])
        if enabled is None:
            problems.invalid("enabled")
        changes["enabled"] = enabled
    if "cadence" in attributes:
        cadence = attributes["cadence"]
        if not isinstance(cadence, str) or cadence not in CADENCE_DURATIONS:
            problems.field("cadence", _NOT_IN_LIST)
        changes["cadence"] = cadence
    if "keep_n" in attributes:
        changes["keep_n"] = _read_keep_n(attributes["keep_n"], problems)
    if "older_than" in attributes:
        older_than = attributes["older_than"]
        if older_than == "":
            older_than = None
        if older_than is not None and (not isinstance(older_than, str) or older_than not in OLDER_THAN_CHOICES):
            problems.field("older_than", _NOT_IN_LIST)
        changes["older_than"] = older_than
    # name_regex_delete is GitLab's newer spelling of name_regex.
    for key in ("name_regex", "name_regex_delete"):
        if key in attributes and "name_regex" not in changes:
            changes["name_regex"] = _read_regex("name_regex", attributes[key], problems)
    if "name_regex_keep" in attributes:
        changes["name_regex_keep"] = _read_regex("name_regex_keep", attributes["name_regex_keep"], problems)
    return changes


def validate_cleanup_policy_attributes(*, attributes: Any, current: ContainerExpirationPolicy | None) -> dict:
    """The validated changes ``attributes`` asks for; raises ``ServiceError`` (400) otherwise.

    ``current`` is the policy the changes apply to (None for a new project: defaults).
    """
    if not isinstance(attributes, dict):
        raise invalid_params(f"{REQUEST_PREFIX} is invalid")
    problems = _Problems()
    changes = _changes(attributes, problems)
    problems.raise_if_any()
    base = current or ContainerExpirationPolicy()
    enabled = changes.get("enabled", base.enabled)
    if enabled:
        name_regex = changes.get("name_regex", base.name_regex)
        if not name_regex or not name_regex.strip():
            problems.field("name_regex", "can't be blank")
        for key in ("name_regex", "name_regex_keep"):
            stored = getattr(base, key)
            if key not in changes and stored and (detail := validate_regex(stored)) is not None:
                problems.field(key, f"not valid RE2 syntax: {detail}")
    problems.raise_if_any()
    return changes


@transaction.atomic
def update_cleanup_policy(*, project: Project, attributes: dict) -> ContainerExpirationPolicy:
    """Apply ``container_expiration_policy_attributes`` to ``project``'s policy.

    Keys not sent keep their values; unknown keys are ignored. Saving recomputes
    ``next_run_at``. Raises ``ServiceError`` (400, GitLab's shapes) and changes nothing when
    any attribute is invalid.
    """
    policy, _ = ContainerExpirationPolicy.objects.select_for_update().get_or_create(project=project)
    changes = validate_cleanup_policy_attributes(attributes=attributes, current=policy)
    before = audited_values(policy)
    for key, value in changes.items():
        setattr(policy, key, value)
    policy.save()
    record_policy_changes(policy, before, project=project)
    return policy


AUDITED_FIELDS = ("enabled", "cadence", "keep_n", "older_than", "name_regex", "name_regex_keep")


def audited_values(policy: ContainerExpirationPolicy) -> dict[str, Any]:
    return {field: getattr(policy, field) for field in AUDITED_FIELDS}


def record_policy_changes(policy: ContainerExpirationPolicy, before: dict[str, Any], *, project: Project) -> None:
    """Audit each attribute of a saved cleanup policy that differs from ``before``; every
    writer of a policy (API, admin, commands) calls it in the transaction of the save."""
    audit.record_changes(
        "project_cleanup_policy_updated",
        entity=project,
        before=before,
        after=audited_values(policy),
        target=policy,
        target_details=f"cleanup policy of {project.full_path}",
    )


def policy_problem(policy: ContainerExpirationPolicy) -> str | None:
    """Why ``policy`` cannot run when enabled, or None: GitLab's policy validation (a
    delete regex is required, and both regexes must be valid RE2)."""
    if not policy.name_regex or not policy.name_regex.strip():
        return "name_regex is blank"
    for key in ("name_regex", "name_regex_keep"):
        value = getattr(policy, key)
        if value and (detail := validate_regex(value)) is not None:
            return f"{key} is not valid RE2 syntax: {detail}"
    return None


def disable_policy(*, project_id: int, reason: str) -> bool:
    """Turn an enabled policy off and record why (GitLab's ``disable!``). True if it was
    enabled."""
    with transaction.atomic():
        changed = ContainerExpirationPolicy.objects.filter(project_id=project_id, enabled=True).update(
            enabled=False, disabled_reason=reason[:255]
        )
        if changed:
            _record_disabled([project_id], reason)
    if changed:
        logger.warning("cleanup policy disabled", extra={"project_id": project_id, "reason": reason})
    return changed == 1


def _record_disabled(project_ids: list[int], reason: str) -> None:
    """Audit the system turning policies off (a fixed-shape read of their projects)."""
    policies = ContainerExpirationPolicy.objects.filter(project_id__any=project_ids).select_related("project")
    for policy in policies:
        audit.record(
            "project_cleanup_policy_updated",
            entity=policy.project,
            change=("enabled", True, False),
            target=policy,
            target_details=f"cleanup policy of {policy.project.full_path}, disabled: {reason}",
        )


def disable_policies_without_repositories() -> list[int]:
    """Disable the enabled policies of projects that have no container repository, as
    GitLab's hourly policy worker does. Returns the projects whose policy it disabled.

    Ids are read a batch at a time, then updated under the same condition, so a policy
    whose project got a repository in between stays enabled."""
    no_repositories = ~Exists(ContainerRepository.objects.filter(project_id=OuterRef("project_id")))
    idle = ContainerExpirationPolicy.objects.filter(enabled__in=[True]).filter(no_repositories)
    disabled: list[int] = []
    while ids := list(idle.order_by("project_id").values_list("project_id", flat=True)[:DISABLE_BATCH_SIZE]):
        with transaction.atomic():
            idle.filter(project_id__any=ids).update(enabled=False, disabled_reason=DISABLED_NO_REPOSITORIES)
            kept = set(
                ContainerExpirationPolicy.objects.filter(project_id__any=ids, enabled=True).values_list(
                    "project_id", flat=True
                )
            )
            batch = [project_id for project_id in ids if project_id not in kept]
            _record_disabled(batch, DISABLED_NO_REPOSITORIES)
        disabled += batch
    if disabled:
        logger.info("cleanup policies without repositories disabled", extra={"policies": len(disabled)})
    return disabled
