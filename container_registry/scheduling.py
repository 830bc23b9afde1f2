"""Running cleanup policies on their schedule (GitLab's ContainerExpirationPolicyWorker and
its limited-capacity cleanup worker).

The life of a policy run:

* ``schedule_cleanup_policies`` (beat, hourly at minute 50) puts back repositories whose
  worker died, disables the enabled policies of projects without repositories (as
  GitLab does), marks the repositories of due, enabled policies ``cleanup_scheduled``
  (those that have not run since the policy became due) and returns the repositories to
  start now: scheduled ones first (GitLab's "requiring cleanup"), then unfinished ones,
  no more than the free worker capacity
  (``container_registry_expiration_policies_worker_capacity``; 0 = never).
* ``run_policy_cleanup`` claims one repository with a conditional UPDATE (a second task
  for the same repository changes no row and does nothing); the claim sets the start
  time and clears the last deleted-tags count. A policy that cannot run (blank or
  invalid regex) is disabled with its reason instead; a repository whose policy runs
  again within the deletion time budget goes back to ``cleanup_unscheduled`` and waits
  for that run. Otherwise it runs the cleanup service with the policy's rules and
  records the outcome: a finished run ends ``cleanup_unscheduled`` with its completion
  time and deleted count; a run cut short by the limits or by a registry error (every
  tag it tried to delete refused included) ends ``cleanup_unfinished`` without them and
  resumes later.
* When every repository of the project has run in this cycle, ``next_run_at`` moves on by
  the cadence (a conditional UPDATE, so only once).

These are plain services; ``workers/cleanup.py`` wraps them in Celery tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from container_registry.brake import brake_for, held_plan, hold_message
from container_registry.cleanup import (
    LIMIT_REASONS,
    STOP_INVALID_POLICY,
    STOP_NEXT_RUN_SOON,
    STOP_POLICY_DISABLED,
    STOP_REGISTRY_ERROR,
    STOP_STALE,
    CleanupResult,
    cleanup_tags,
)
from container_registry.cleanup_rules import Brake, CleanupRules, InvalidCleanupRules
from container_registry.errors import RegistryError
from container_registry.models import CADENCE_DURATIONS, ContainerExpirationPolicy, ContainerRepository
from container_registry.policies import (
    DISABLED_INVALID,
    disable_policies_without_repositories,
    disable_policy,
    policy_problem,
)
from container_registry.services import record_repository_event
from gitlab_core.models import ApplicationSettings

logger = logging.getLogger(__name__)

CleanupStatus = ContainerRepository.CleanupStatus
# GitLab: an ongoing cleanup older than the deletion budget plus 30 minutes is stale.
STALE_GRACE = dt.timedelta(minutes=30)
MAX_STOP_REASON_LENGTH = 255
# Project ids per UPDATE when marking due repositories (well under SQLite's 999
# bound parameters of old builds).
MARK_CHUNK_SIZE = 500


@dataclass
class ScheduleReport:
    stale_reset: int = 0
    disabled: int = 0
    marked: int = 0
    advanced: int = 0
    to_start: list[int] = field(default_factory=list)


@dataclass
class PolicyRunOutcome:
    """What one ``run_policy_cleanup`` did: ``skipped`` (not claimed), ``finished``,
    ``unfinished``, ``held`` (by the brake), ``policy_disabled`` or ``invalid_policy``."""

    repository_id: int
    result: str
    cleanup: CleanupResult | None = None

    @property
    def error(self) -> RegistryError | None:
        return self.cleanup.error if self.cleanup else None


# --- Reads -------------------------------------------------------------------------------


def due_policies(*, now: dt.datetime) -> QuerySet[ContainerExpirationPolicy]:
    """Enabled policies whose ``next_run_at`` has passed, of live projects that have
    container repositories. Uses the (enabled, next_run_at) index; projects that are not
    due are never read."""
    has_repositories = ContainerRepository.objects.filter(project_id=OuterRef("project_id"))
    # ``enabled__in=[True]`` compiles to ``enabled IN (1)``: SQLite cannot use the index
    # for the bare ``WHERE enabled`` that ``enabled=True`` becomes (PostgreSQL can either way).
    return ContainerExpirationPolicy.objects.filter(
        enabled__in=[True], next_run_at__lte=now, project__pending_delete=False
    ).filter(Exists(has_repositories))


def ongoing_count() -> int:
    return ContainerRepository.objects.filter(expiration_policy_cleanup_status=CleanupStatus.ONGOING).count()


def repositories_to_start(*, include_errored: bool = True, limit: int | None = None) -> list[int]:
    """Repositories to start now, within the free worker capacity. As GitLab's cleanup
    worker picks them: first those whose policy is due and that have not run in this
    cycle (``cleanup_scheduled``, never-run first, then oldest start), then unfinished
    runs (oldest start first). ``include_errored`` False leaves out unfinished runs that
    stopped on a registry error; the hourly scheduler resumes those, so a registry that
    is down is not hammered by a chain of retries."""
    capacity = ApplicationSettings.current().container_registry_expiration_policies_worker_capacity
    slots = capacity - ongoing_count()
    if limit is not None:
        slots = min(slots, limit)
    if slots <= 0:
        return []
    live = ContainerRepository.objects.filter(
        status__isnull=True, project__pending_delete=False, project__container_expiration_policy__enabled=True
    )
    oldest_start_first = (F("expiration_policy_started_at").asc(nulls_first=True), "id")
    scheduled = live.filter(expiration_policy_cleanup_status=CleanupStatus.SCHEDULED).order_by(*oldest_start_first)
    ids = list(scheduled.values_list("id", flat=True)[:slots])
    if len(ids) < slots:
        unfinished = live.filter(expiration_policy_cleanup_status=CleanupStatus.UNFINISHED)
        if not include_errored:
            unfinished = unfinished.filter(last_cleanup_stop_reason__in=LIMIT_REASONS)
        ids += list(unfinished.order_by(*oldest_start_first).values_list("id", flat=True)[: slots - len(ids)])
    return ids


# --- The scheduler -------------------------------------------------------------------------


def reset_stale_cleanups(*, now: dt.datetime) -> int:
    """``cleanup_ongoing`` repositories started longer ago than the deletion budget plus
    30 minutes lost their worker: make them ``cleanup_unfinished`` so they resume."""
    budget = ApplicationSettings.current().container_registry_delete_tags_service_timeout
    limit = now - dt.timedelta(seconds=budget) - STALE_GRACE
    count = (
        ContainerRepository.objects.filter(expiration_policy_cleanup_status=CleanupStatus.ONGOING)
        .filter(Q(expiration_policy_started_at__lt=limit) | Q(expiration_policy_started_at__isnull=True))
        .update(expiration_policy_cleanup_status=CleanupStatus.UNFINISHED, last_cleanup_stop_reason=STOP_STALE)
    )
    if count:
        logger.warning("reset stale cleanup runs", extra={"repositories": count})
    return count


def mark_due_repositories(*, now: dt.datetime) -> int:
    """Mark ``cleanup_scheduled`` the repositories of due policies that have not started
    a run since their policy became due. Returns how many rows changed.

    The due projects are read first through the policies' (enabled, next_run_at) index,
    then their repositories are updated by project id, a chunk at a time: a single
    UPDATE filtered on ``cleanup_unscheduled`` lets SQLite walk that status index, which
    holds almost every repository, due or not."""
    project_ids = list(due_policies(now=now).order_by("project_id").values_list("project_id", flat=True))
    policy_due_at = ContainerExpirationPolicy.objects.filter(project_id=OuterRef("project_id")).values("next_run_at")
    not_run_this_cycle = Q(expiration_policy_started_at__isnull=True) | Q(
        expiration_policy_started_at__lt=Subquery(policy_due_at[:1])
    )
    marked = 0
    for offset in range(0, len(project_ids), MARK_CHUNK_SIZE):
        marked += (
            ContainerRepository.objects.filter(
                project_id__in=project_ids[offset : offset + MARK_CHUNK_SIZE],
                status__isnull=True,
                expiration_policy_cleanup_status=CleanupStatus.UNSCHEDULED,
            )
            .filter(not_run_this_cycle)
            .update(expiration_policy_cleanup_status=CleanupStatus.SCHEDULED)
        )
    return marked


def advance_policy_schedule(*, project_id: int, now: dt.datetime) -> bool:
    """Move a due policy's ``next_run_at`` to now + cadence once every repository of the
    project has started a run in this cycle and none is waiting or running. Unfinished
    runs do not hold the schedule back: they resume on their own. True if it moved."""
    policy = ContainerExpirationPolicy.objects.filter(project_id=project_id, enabled=True, next_run_at__lte=now).first()
    if policy is None:
        return False
    waiting = (
        ContainerRepository.objects.filter(project_id=project_id, status__isnull=True)
        .filter(
            Q(expiration_policy_cleanup_status__in=[CleanupStatus.SCHEDULED, CleanupStatus.ONGOING])
            | Q(expiration_policy_started_at__isnull=True)
            | Q(expiration_policy_started_at__lt=policy.next_run_at)
        )
        .exists()
    )
    if waiting:
        return False
    moved = ContainerExpirationPolicy.objects.filter(pk=policy.pk, next_run_at=policy.next_run_at).update(
        next_run_at=now + CADENCE_DURATIONS[policy.cadence], updated_at=now
    )
    return moved == 1


def schedule_cleanup_policies(*, now: dt.datetime | None = None) -> ScheduleReport:
    """The hourly scheduler: reset stale runs, disable the policies of projects without
    repositories, mark due repositories, move the schedule of due policies with nothing
    left to run, and return the repositories to start (none when the worker capacity is
    0)."""
    now = now or timezone.now()
    report = ScheduleReport()
    report.stale_reset = reset_stale_cleanups(now=now)
    report.disabled = len(disable_policies_without_repositories())
    report.marked = mark_due_repositories(now=now)
    for project_id in due_policies(now=now).values_list("project_id", flat=True).iterator():
        report.advanced += advance_policy_schedule(project_id=project_id, now=now)
    report.to_start = repositories_to_start(include_errored=True)
    logger.info(
        "cleanup policies scheduled",
        extra={
            "stale_reset": report.stale_reset,
            "disabled": report.disabled,
            "marked": report.marked,
            "advanced": report.advanced,
            "started": len(report.to_start),
        },
    )
    return report


# --- One repository ------------------------------------------------------------------------


def claim_repository(*, repository_id: int, now: dt.datetime, statuses: list[str] | None = None) -> bool:
    """Take a repository for a cleanup run: one conditional UPDATE from ``statuses``
    (default: scheduled or unfinished) to ``cleanup_ongoing``, clearing the last run's
    deleted-tags count as GitLab's start does. False if no row changed.

    ``now`` becomes ``expiration_policy_started_at`` and is the run's claim: every later
    change the run makes passes it back as ``claimed_at``."""
    statuses = statuses or [CleanupStatus.SCHEDULED, CleanupStatus.UNFINISHED]
    changed = ContainerRepository.objects.filter(
        pk=repository_id, status__isnull=True, expiration_policy_cleanup_status__in=statuses
    ).update(
        expiration_policy_cleanup_status=CleanupStatus.ONGOING,
        expiration_policy_started_at=now,
        last_cleanup_deleted_tags_count=None,
    )
    return changed == 1


def _owned(repository_id: int, claimed_at: dt.datetime) -> QuerySet[ContainerRepository]:
    # A run that was declared stale and whose repository was claimed again by a newer
    # run no longer owns it: the start time no longer matches its claim.
    return ContainerRepository.objects.filter(
        pk=repository_id,
        expiration_policy_cleanup_status=CleanupStatus.ONGOING,
        expiration_policy_started_at=claimed_at,
    )


def _lost_claim(repository_id: int) -> None:
    logger.warning(
        "cleanup run not recorded: another run owns the repository", extra={"container_repository_id": repository_id}
    )


def record_run(
    *,
    repository_id: int,
    claimed_at: dt.datetime,
    result: CleanupResult | None,
    stop_reason: str,
    now: dt.datetime,
    revision: int | None = None,
) -> bool:
    """Store the end of a run on the repository, only if this run (the one that claimed
    it at ``claimed_at``) still owns it. False when it did not any more.

    As GitLab records it: a finished run goes back to ``cleanup_unscheduled`` with its
    completion time and deleted count; any other end is ``cleanup_unfinished`` and
    writes neither (the count stays cleared by the claim, the completion time is the
    last finished run's). A run that decided its tags (past the brake) under the policy's
    ``revision`` records it: later runs of that revision are not braked."""
    if result is not None and result.error is not None:
        stop_reason = f"{STOP_REGISTRY_ERROR}: {result.error}"
    fields = {"last_cleanup_stop_reason": stop_reason[:MAX_STOP_REASON_LENGTH]}
    if result is not None and result.decided and revision is not None:
        fields["cleanup_policy_revision"] = revision
    if result is not None and result.finished:
        fields.update(
            expiration_policy_cleanup_status=CleanupStatus.UNSCHEDULED,
            expiration_policy_completed_at=now,
            last_cleanup_deleted_tags_count=result.deleted_size,
        )
    else:
        fields.update(expiration_policy_cleanup_status=CleanupStatus.UNFINISHED)
    changed = _owned(repository_id, claimed_at).update(**fields)
    if not changed:
        _lost_claim(repository_id)
    return changed == 1


def _release(repository_id: int, reason: str, claimed_at: dt.datetime) -> None:
    """Hand back a claimed repository that does not run now: ``cleanup_unscheduled``, as
    GitLab's worker leaves a repository it may not run."""
    changed = _owned(repository_id, claimed_at).update(
        expiration_policy_cleanup_status=CleanupStatus.UNSCHEDULED, last_cleanup_stop_reason=reason
    )
    if not changed:
        _lost_claim(repository_id)


def runs_again_soon(policy: ContainerExpirationPolicy, *, now: dt.datetime) -> bool:
    """The policy's next run is ahead but sooner than one run's deletion budget
    (``container_registry_delete_tags_service_timeout``): a repository left from the
    last cycle waits for that run instead of starting now (GitLab's ``allowed_to_run?``)."""
    if policy.next_run_at is None or policy.next_run_at <= now:
        return False
    budget = ApplicationSettings.current().container_registry_delete_tags_service_timeout
    return policy.next_run_at <= now + dt.timedelta(seconds=budget)


def run_policy_cleanup(
    *,
    repository_id: int,
    client=None,
    respect_capacity: bool = True,
    claim_from: list[str] | None = None,
    progress=None,
) -> PolicyRunOutcome:
    """Run the project's cleanup policy on one repository.

    Claims it first (``skipped`` when another run has it, it is not waiting, or the
    worker capacity is used up). A disabled policy releases the repository, and so does
    one that runs again sooner than a run's deletion budget (``next_run_soon``); an
    invalid one (blank or invalid regex) is disabled with its reason, as GitLab does.
    Records the run on the repository and moves the policy's schedule when the whole
    project is done. Registry faults do not raise: the
    outcome carries them (``outcome.error``) so the caller can retry transient ones.
    Other exceptions leave the run recorded as unfinished and propagate.
    """
    if respect_capacity:
        capacity = ApplicationSettings.current().container_registry_expiration_policies_worker_capacity
        if ongoing_count() >= capacity:
            return PolicyRunOutcome(repository_id, "skipped")
    now = timezone.now()
    if not claim_repository(repository_id=repository_id, now=now, statuses=claim_from):
        return PolicyRunOutcome(repository_id, "skipped")
    repository = ContainerRepository.objects.select_related("project").get(pk=repository_id)
    policy = ContainerExpirationPolicy.objects.filter(project_id=repository.project_id).first()
    if policy is None or not policy.enabled or repository.project.pending_delete:
        _release(repository_id, STOP_POLICY_DISABLED, now)
        return PolicyRunOutcome(repository_id, STOP_POLICY_DISABLED)
    if runs_again_soon(policy, now=now):
        _release(repository_id, STOP_NEXT_RUN_SOON, now)
        return PolicyRunOutcome(repository_id, STOP_NEXT_RUN_SOON)
    rules = CleanupRules.from_policy(policy)
    problem = policy_problem(policy)
    if problem is None:
        try:
            rules.compile()
        except InvalidCleanupRules as exc:
            problem = str(exc)
    if problem is not None:
        # GitLab disables a policy that fails its validation instead of running it.
        disable_policy(project_id=policy.pk, reason=f"{DISABLED_INVALID}: {problem}")
        _release(repository_id, STOP_INVALID_POLICY, now)
        return PolicyRunOutcome(repository_id, STOP_INVALID_POLICY)
    return _run_claimed(repository, policy, rules, claimed_at=now, client=client, progress=progress)


def hold_repository(
    *, repository: ContainerRepository, claimed_at: dt.datetime, result: CleanupResult, brake: Brake, revision: int
) -> bool:
    """Store a run the brake stopped: ``cleanup_held`` with its plan, audited in the same
    transaction; only if this run still owns the repository."""
    now = timezone.now()
    plan = held_plan(result, brake, revision=revision, now=now)
    # Held only under the revision this run read: a policy changed during the run lifted
    # holds already, and its own first run is braked again.
    same_policy = Exists(
        ContainerExpirationPolicy.objects.filter(project_id=OuterRef("project_id"), rules_revision=revision)
    )
    with transaction.atomic():
        changed = (
            _owned(repository.pk, claimed_at)
            .filter(same_policy)
            .update(
                expiration_policy_cleanup_status=CleanupStatus.HELD,
                last_cleanup_stop_reason=result.stop_reason,
                cleanup_held_at=now,
                cleanup_held_plan=plan,
            )
        )
        if changed:
            record_repository_event(repository, "container_repository_cleanup_held", hold_message(plan))
    if not changed:
        if _owned(repository.pk, claimed_at).update(
            expiration_policy_cleanup_status=CleanupStatus.UNSCHEDULED, last_cleanup_stop_reason="policy_changed"
        ):
            logger.info(
                "cleanup run not held: the policy changed during it", extra={"container_repository_id": repository.pk}
            )
        else:
            _lost_claim(repository.pk)
        return False
    logger.warning(
        "cleanup policy run held by the brake",
        extra={"container_repository_id": repository.pk, "path": repository.path, **result.log_fields()},
    )
    return True


def _run_claimed(
    repository: ContainerRepository,
    policy: ContainerExpirationPolicy,
    rules: CleanupRules,
    *,
    claimed_at: dt.datetime,
    client,
    progress,
) -> PolicyRunOutcome:
    brake = brake_for(repository, policy)
    try:
        result = cleanup_tags(
            repository=repository, rules=rules, policy_run=True, client=client, progress=progress, brake=brake
        )
    except Exception as exc:
        # A time limit or a database fault: record how the run ended, let the task fail.
        record_run(
            repository_id=repository.pk,
            claimed_at=claimed_at,
            result=None,
            stop_reason=f"error: {type(exc).__name__}",
            now=timezone.now(),
        )
        raise
    if result.held:
        hold_repository(
            repository=repository, claimed_at=claimed_at, result=result, brake=brake, revision=policy.rules_revision
        )
        advance_policy_schedule(project_id=repository.project_id, now=timezone.now())
        return PolicyRunOutcome(repository.pk, result.status, result)
    now = timezone.now()
    record_run(
        repository_id=repository.pk,
        claimed_at=claimed_at,
        result=result,
        stop_reason=result.stop_reason,
        now=now,
        revision=policy.rules_revision,
    )
    advance_policy_schedule(project_id=repository.project_id, now=now)
    logger.info(
        "cleanup policy run",
        extra={"container_repository_id": repository.pk, "path": repository.path, **result.log_fields()},
    )
    return PolicyRunOutcome(repository.pk, result.status, result)
