"""Protected container repositories (GitLab's container registry protection rules).

A rule of a project names a repository path pattern (the repository's full path, ``*``
for any run of characters, matched without regard to case) and the minimum role to
push to and to delete from the matching repositories: ``maintainer``, ``owner`` or
``admin`` (an instance administrator); a role left empty does not protect that
action. ``refused_actions`` is the one check: the realm refuses the token, the API
refuses the deletion.

Who is held back, as GitLab's rule existence check does it: instance administrators
never; a user (a CI job counts as its user) whose effective role on the project is
below the minimum; deploy tokens, and jobs without a user, always (they have no
role). GitLab's realm lets deploy tokens push anyway (it asks for a role only when
there is a user); we do not copy that gap.

Scheduled cleanup policies are not held back: GitLab's cleanup honours tag protection
rules only, and a policy is itself set by the project's Maintainers.
"""

from __future__ import annotations

import re2
from django.db import IntegrityError, transaction

from gitlab_core import audit
from gitlab_core.errors import ServiceError, invalid_params
from gitlab_core.models import User
from gitlab_core.text import clean_text
from projects.image_paths import MAX_PATH_LENGTH, valid_image_path
from projects.models import ContainerRepositoryProtectionRule, DeployToken, Project, ProtectionLevel
from projects.permissions import project_access_level

PUSH = "push"
DELETE = "delete"
# Rules one project may have; the check reads them all.
MAX_RULES_PER_PROJECT = 100

_UNKNOWN = object()


def pattern_matches(pattern: str, repository_path: str) -> bool:
    """``repository_path`` matches ``pattern`` (``*``: any run of characters; case ignored)."""
    regex = ".*".join(re2.escape(part) for part in pattern.lower().split("*"))
    return re2.fullmatch(regex, repository_path.lower()) is not None


def refused_actions(
    actor: User | DeployToken | None,
    project: Project,
    repository_path: str,
    *,
    access_level: int | None | object = _UNKNOWN,
) -> frozenset[str]:
    """Of ``push`` and ``delete``, those the project's rules refuse ``actor`` on the
    repository at ``repository_path``. ``actor`` None is a caller without a role (a CI
    job without a user); ``access_level`` is the user's effective level when the caller
    has it already (the realm does)."""
    if isinstance(actor, User) and actor.is_admin:
        return frozenset()
    matching = [
        rule
        for rule in ContainerRepositoryProtectionRule.objects.filter(project=project)[:MAX_RULES_PER_PROJECT]
        if pattern_matches(rule.repository_path_pattern, repository_path)
    ]
    if not matching:
        return frozenset()
    if isinstance(actor, User):
        level = project_access_level(actor, project) if access_level is _UNKNOWN else access_level
    else:
        level = None
    refused = set()
    for rule in matching:
        for action, minimum in (
            (PUSH, rule.minimum_access_level_for_push),
            (DELETE, rule.minimum_access_level_for_delete),
        ):
            if minimum is not None and (level is None or level < minimum):
                refused.add(action)
    return frozenset(refused)


# --- Rules: validation and changes (API and admin) -------------------------------------------


def level_from_name(value, field: str) -> int | None:
    """``"maintainer"``, ``"owner"`` or ``"admin"`` (also their numbers) -> the level;
    ``None`` or ``""`` -> no protection. 400 otherwise."""
    if value is None or value == "":
        return None
    for level in ProtectionLevel:
        if value == level.label or str(value) == str(level.value):
            return level.value
    raise invalid_params(f"{field} does not have a valid value")


def pattern_problems(pattern: str, project: Project) -> list[str]:
    """Why ``pattern`` cannot protect repositories of ``project`` (empty: it can)."""
    if not pattern or not clean_text(pattern) or len(pattern) > MAX_PATH_LENGTH:
        return ["should be a valid container repository path with optional wildcard characters."]
    problems = []
    # With each wildcard standing for one character, the pattern is a repository path.
    if not valid_image_path(pattern.lower().replace("*", "x")):
        problems.append("should be a valid container repository path with optional wildcard characters.")
    if not pattern.lower().startswith(project.full_path_lower):
        problems.append("should start with the project's full path")
    return problems


def _check(rule: ContainerRepositoryProtectionRule) -> None:
    problems = pattern_problems(rule.repository_path_pattern, rule.project)
    if problems:
        raise ServiceError(422, {"message": {"repository_path_pattern": problems}})
    if rule.minimum_access_level_for_push is None and rule.minimum_access_level_for_delete is None:
        raise ServiceError(422, {"message": ["A rule must have at least a minimum access role for push or delete."]})
    taken = ContainerRepositoryProtectionRule.objects.filter(
        project=rule.project, repository_path_pattern=rule.repository_path_pattern
    ).exclude(pk=rule.pk)
    if taken.exists():
        raise ServiceError(422, {"message": {"repository_path_pattern": ["has already been taken"]}})


AUDITED_FIELDS = ("repository_path_pattern", "minimum_access_level_for_push", "minimum_access_level_for_delete")


def _audited(rule: ContainerRepositoryProtectionRule) -> dict:
    def label(level):
        return ProtectionLevel(level).label if level is not None else None

    return {
        "repository_path_pattern": rule.repository_path_pattern,
        "minimum_access_level_for_push": label(rule.minimum_access_level_for_push),
        "minimum_access_level_for_delete": label(rule.minimum_access_level_for_delete),
    }


def _describe(rule: ContainerRepositoryProtectionRule) -> str:
    values = _audited(rule)
    return (
        f"{values['repository_path_pattern']} (push: {values['minimum_access_level_for_push'] or '-'}, "
        f"delete: {values['minimum_access_level_for_delete'] or '-'})"
    )


@transaction.atomic
def create_rule(*, project: Project, **fields) -> ContainerRepositoryProtectionRule:
    # Rows of the project locked: two concurrent creations cannot both pass the checks.
    Project.objects.select_for_update().filter(pk=project.pk).first()
    if ContainerRepositoryProtectionRule.objects.filter(project=project).count() >= MAX_RULES_PER_PROJECT:
        raise ServiceError(422, {"message": [f"A project has at most {MAX_RULES_PER_PROJECT} protection rules."]})
    rule = ContainerRepositoryProtectionRule(project=project, **fields)
    _check(rule)
    _save(rule)
    audit.record(
        "container_protection_rule_created",
        entity=project,
        target=rule,
        target_details=rule.repository_path_pattern,
        message=f"Created container repository protection rule {_describe(rule)}",
    )
    return rule


@transaction.atomic
def update_rule(rule: ContainerRepositoryProtectionRule, **fields) -> ContainerRepositoryProtectionRule:
    Project.objects.select_for_update().filter(pk=rule.project_id).first()
    before = _audited(rule)
    for name, value in fields.items():
        setattr(rule, name, value)
    _check(rule)
    _save(rule)
    audit.record_changes(
        "container_protection_rule_updated",
        entity=rule.project,
        before=before,
        after=_audited(rule),
        target=rule,
        target_details=rule.repository_path_pattern,
    )
    return rule


def _save(rule: ContainerRepositoryProtectionRule) -> None:
    try:
        with transaction.atomic():
            rule.save()
    except IntegrityError:
        # A concurrent request took the pattern between the check and the save.
        raise ServiceError(422, {"message": {"repository_path_pattern": ["has already been taken"]}})


@transaction.atomic
def delete_rule(rule: ContainerRepositoryProtectionRule) -> None:
    audit.record(
        "container_protection_rule_deleted",
        entity=rule.project,
        target=rule,
        target_details=rule.repository_path_pattern,
        message=f"Deleted container repository protection rule {_describe(rule)}",
    )
    rule.delete()
