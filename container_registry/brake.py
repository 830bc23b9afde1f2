"""The brake on mass deletion by cleanup policies (our extension; GitLab has none).

A policy's ``rules_revision`` moves whenever what it deletes changes (a new policy, a
changed regex, ``keep_n``, ``older_than``, enabling it). The first scheduled run of a
repository under a revision it has not run yet is braked (a repository created after
the policy last changed has nothing to be braked for): when it would delete more than
``container_registry_cleanup_brake_tags`` tags or more than
``container_registry_cleanup_brake_percent`` percent of the repository's tags, it deletes
nothing. The repository becomes ``cleanup_held`` with the dry-run plan of that run
(``held_plan``: counts, the limits and at most ``PLAN_TAG_NAMES`` of the tags it would
delete, oldest first) and an audit event. The scheduler leaves held repositories alone
until a Maintainer or an administrator releases them (``release``: the next scheduler
pass runs them without the brake) or the policy changes (a new revision: the hold goes,
and that revision's first run is braked again). A run that passed the brake, and every
run after it under the same revision, deletes normally. With
``container_registry_cleanup_brake_enabled`` off no run is braked.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction

from container_registry.cleanup import CleanupResult
from container_registry.cleanup_rules import Brake
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.services import record_repository_event
from gitlab_core.api.format import iso
from gitlab_core.errors import bad_request
from gitlab_core.models import ApplicationSettings

CleanupStatus = ContainerRepository.CleanupStatus
# Tag names kept in a held plan (the counts are always complete).
PLAN_TAG_NAMES = 100
NOT_HELD = "The cleanup policy of this container repository is not held"


def brake_for(repository: ContainerRepository, policy: ContainerExpirationPolicy) -> Brake | None:
    """The brake for a policy run of ``repository``, or None when the run is not braked:
    the brake is off, the repository already ran under this revision of the policy, or it
    is new under a policy that has not changed since (a new image under an established
    policy is not a change of what the policy deletes)."""
    if repository.cleanup_policy_revision == policy.rules_revision:
        return None
    if repository.cleanup_policy_revision is None and repository.created_at >= policy.updated_at:
        return None
    app_settings = ApplicationSettings.current()
    if not app_settings.container_registry_cleanup_brake_enabled:
        return None
    return Brake(
        max_tags=app_settings.container_registry_cleanup_brake_tags,
        max_percent=app_settings.container_registry_cleanup_brake_percent,
    )


def held_plan(result: CleanupResult, brake: Brake, *, revision: int, now: dt.datetime) -> dict:
    """What a held run would have done, bounded whatever the repository's size."""
    return {
        "held_at": iso(now),
        "policy_revision": revision,
        "tags": result.original_size,
        "delete": result.before_delete_size,
        "keep": result.original_size - result.before_delete_size,
        "brake_tags": brake.max_tags,
        "brake_percent": brake.max_percent,
        "delete_tags": [
            {"name": d.name, "rule": d.rule, "created_at": iso(d.created_at)} for d in result.decisions[:PLAN_TAG_NAMES]
        ],
        "delete_tags_truncated": len(result.decisions) > PLAN_TAG_NAMES,
    }


def hold_message(plan: dict) -> str:
    return (
        f"Cleanup policy run held by the mass-deletion brake: it would delete {plan['delete']} of "
        f"{plan['tags']} tags (limits: {plan['brake_tags']} tags, {plan['brake_percent']}%)"
    )


def release(*, repository: ContainerRepository) -> ContainerRepository:
    """Release a held repository: it is ``cleanup_scheduled`` again, and its runs under the
    policy revision that was held are no longer braked (if the policy changed since, its
    new revision's first run still is). Raises ``ServiceError`` (400) when the repository
    is not held."""
    held = ContainerRepository.objects.filter(
        pk=repository.pk, status__isnull=True, expiration_policy_cleanup_status=CleanupStatus.HELD
    )
    with transaction.atomic():
        found = held.values_list("cleanup_held_at", "cleanup_held_plan").first()
        if found is None:
            raise bad_request(NOT_HELD)
        held_at, plan = found
        # Conditional on the hold read above: a hold lifted or written again meanwhile
        # is not released on the strength of another plan.
        released = held.filter(cleanup_held_at=held_at).update(
            expiration_policy_cleanup_status=CleanupStatus.SCHEDULED,
            cleanup_policy_revision=(plan or {}).get("policy_revision"),
            cleanup_held_at=None,
            cleanup_held_plan=None,
        )
        if not released:
            raise bad_request(NOT_HELD)
        record_repository_event(
            repository,
            "container_repository_cleanup_released",
            "Released the cleanup policy run held by the mass-deletion brake",
        )
    repository.refresh_from_db()
    return repository


def held_repository_count() -> int:
    """Repositories held by the brake now (one indexed count), for the metrics gauge."""
    return ContainerRepository.objects.filter(expiration_policy_cleanup_status=CleanupStatus.HELD).count()
