"""Deleting container repositories, asynchronously and with backoff (as GitLab does).

The life of a deletion:

* Something sets ``delete_scheduled`` (the REST API, a project deletion, an admin).
* ``schedule_due_deletions`` (every 5 minutes) resets deletions whose worker died
  (``delete_ongoing`` for more than 30 minutes) and returns the repositories due now.
* ``delete_repository`` claims one repository with a conditional UPDATE, deletes every
  tag through the registry client and removes the row. The log line of a deletion
  carries the tag count before it and the count deleted (GitLab's sizes). A claim that changes no row means
  someone else has the repository (or it is gone, or not due): nothing happens.
* A failed attempt counts, whether the registry failed or the row could not be removed
  after its tags were gone: while ``failed_deletion_count`` is below 10 it goes back to
  ``delete_scheduled`` and waits 2^count minutes; when it is already 10 (the tenth retry
  failed) the status becomes ``delete_failed`` and only an administrator brings it back
  (``container_registry.maintenance.retry_failed_deletions``).

These are plain services: the Celery tasks in ``workers/deletion.py`` and the management
commands call them.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import re
from dataclasses import dataclass

from django.db import DatabaseError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from container_registry.client import RegistryClient, get_client
from container_registry.errors import RegistryError, RegistryNotFound
from container_registry.models import MAX_DELETION_FAILURES, ContainerRepository
from container_registry.services import record_repository_event
from gitlab_core import audit, metrics
from projects import webhooks
from projects.models import Project

logger = logging.getLogger(__name__)

Status = ContainerRepository.Status

# GitLab's ContainerRegistry::CleanupWorker resets deletions started this long ago.
STALE_DELETION_AFTER = dt.timedelta(minutes=30)
# A random delay of up to this fraction of the wait is added to the backoff, so that many
# repositories failing together (registry down) do not all come back in the same run.
# It is only ever added: the wait is never shorter than GitLab's 2^n minutes.
BACKOFF_JITTER_FRACTION = 0.1
# Longest error message kept on the repository.
MAX_ERROR_LENGTH = 1000


class DeletionIncomplete(Exception):
    """The registry still lists tags after the deletion pass."""


@dataclass(frozen=True)
class DeletionOutcome:
    """What one call of ``delete_repository`` did.

    ``result`` is ``deleted`` (row removed), ``rescheduled`` (failure, will be retried),
    ``failed`` (failure, now ``delete_failed``), or ``skipped`` (not claimed: not due,
    already being deleted elsewhere, or gone).
    """

    repository_id: int
    result: str
    path: str = ""
    deleted_tags: int = 0
    error: str = ""


# --- Reads -------------------------------------------------------------------------------


def pending_destruction(*, now: dt.datetime | None = None) -> QuerySet[ContainerRepository]:
    """``delete_scheduled`` repositories whose backoff has passed (GitLab's scope)."""
    now = now or timezone.now()
    return ContainerRepository.objects.filter(status=Status.DELETE_SCHEDULED).filter(
        Q(next_delete_attempt_at__isnull=True) | Q(next_delete_attempt_at__lte=now)
    )


def failed_deletions() -> QuerySet[ContainerRepository]:
    return ContainerRepository.objects.filter(status=Status.DELETE_FAILED)


# --- Scheduling ----------------------------------------------------------------------------


def schedule_project_repositories_for_deletion(*, project: Project, now: dt.datetime | None = None) -> int:
    """Schedule deletion of every repository of ``project`` (the project is being deleted).

    Repositories already scheduled or being deleted are left alone; ``delete_failed`` ones
    are scheduled again with a fresh failure count, because deleting the project is a new
    request to delete them. Returns the number of repositories changed.
    """
    now = now or timezone.now()
    repositories = ContainerRepository.objects.filter(project=project)
    with transaction.atomic():
        fresh = repositories.filter(status__isnull=True).update(
            status=Status.DELETE_SCHEDULED, status_updated_at=now, next_delete_attempt_at=None
        )
        failed = repositories.filter(status=Status.DELETE_FAILED).update(
            status=Status.DELETE_SCHEDULED,
            status_updated_at=now,
            failed_deletion_count=0,
            next_delete_attempt_at=None,
        )
        if fresh + failed:
            # One event for the project: it may hold many repositories.
            audit.record(
                "container_repository_deletion_scheduled",
                entity=project,
                message=f"Scheduled deletion of {fresh + failed} container repositories with the project",
            )
    return fresh + failed


def reset_stale_deletions(*, now: dt.datetime | None = None) -> int:
    """Put ``delete_ongoing`` repositories started more than 30 minutes ago back to
    ``delete_scheduled`` (their worker died). No failure is counted. Returns how many."""
    now = now or timezone.now()
    count = (
        ContainerRepository.objects.filter(status=Status.DELETE_ONGOING)
        .filter(Q(delete_started_at__lt=now - STALE_DELETION_AFTER) | Q(delete_started_at__isnull=True))
        .update(status=Status.DELETE_SCHEDULED, delete_started_at=None, status_updated_at=now)
    )
    if count:
        logger.warning("reset stale repository deletions", extra={"repositories": count})
    return count


def purge_drained_projects() -> int:
    """Delete projects marked ``pending_delete`` that have no repository left.

    The signal receiver does this when the last repository goes; this sweep catches the
    case where the last two repositories were removed at the same moment by two workers
    and each saw the other still present. Returns the number of projects deleted.
    """
    drained = Project.objects.filter(pending_delete=True, container_repositories__isnull=True)
    count = 0
    for project in drained:
        project.delete()
        count += 1
    return count


def schedule_due_deletions(*, now: dt.datetime | None = None, limit: int | None = None) -> list[int]:
    """The periodic step: reset stale deletions, remove drained pending-delete projects,
    and return the ids of repositories whose deletion is due (oldest wait first)."""
    now = now or timezone.now()
    reset_stale_deletions(now=now)
    purge_drained_projects()
    due = pending_destruction(now=now).order_by("next_delete_attempt_at", "id").values_list("id", flat=True)
    return list(due[:limit] if limit else due)


# --- One deletion ----------------------------------------------------------------------------


def claim_repository_for_deletion(*, repository_id: int, now: dt.datetime | None = None) -> ContainerRepository | None:
    """Claim a due repository: one conditional UPDATE from ``delete_scheduled`` to
    ``delete_ongoing``. Returns the claimed repository, or None when no row changed
    (not due, claimed by someone else, or gone)."""
    now = now or timezone.now()
    changed = (
        pending_destruction(now=now)
        .filter(pk=repository_id)
        .update(status=Status.DELETE_ONGOING, delete_started_at=now, status_updated_at=now, next_delete_attempt_at=None)
    )
    if not changed:
        return None
    return ContainerRepository.objects.select_related("project").get(pk=repository_id)


def delete_repository(
    *, repository_id: int, now: dt.datetime | None = None, client: RegistryClient | None = None
) -> DeletionOutcome:
    """Claim the repository, delete every tag from the registry and remove the row.

    Changes: the repository row (claimed, then removed or marked failed/rescheduled);
    the project row too when it was pending deletion and this was its last repository.
    A registry error is recorded on the repository and returned as the outcome; any
    other exception is recorded the same way and then re-raised (it is a bug). Each
    outcome is counted in ``repository_deletions_total``.
    """
    outcome = _delete_repository(repository_id=repository_id, now=now, client=client)
    metrics.REPOSITORY_DELETIONS.labels(outcome.result).inc()
    return outcome


def _delete_repository(
    *, repository_id: int, now: dt.datetime | None, client: RegistryClient | None
) -> DeletionOutcome:
    repository = claim_repository_for_deletion(repository_id=repository_id, now=now)
    if repository is None:
        return DeletionOutcome(repository_id=repository_id, result="skipped")
    claimed_at = repository.delete_started_at
    path = repository.path
    try:
        sizes = _delete_all_tags(repository, client=client)
    except (RegistryError, DeletionIncomplete) as exc:
        return _fail(repository, exc, now=now)
    except Exception as exc:
        metrics.REPOSITORY_DELETIONS.labels(_fail(repository, exc, now=now).result).inc()
        raise
    try:
        # Its own savepoint, so a failed DELETE leaves a caller's transaction usable.
        with transaction.atomic():
            removed, _ = ContainerRepository.objects.filter(
                pk=repository.pk, status=Status.DELETE_ONGOING, delete_started_at=claimed_at
            ).delete()
    except DatabaseError as exc:
        # The tags are gone but the row stayed (a lock timeout, a trigger, a lost
        # statement): a failed attempt like any other, retried after the backoff.
        return _fail(repository, exc, now=now, sizes=sizes)
    if not removed:
        # The claim was reset as stale and taken by another run: that run removes the row.
        logger.warning("repository deletion lost its claim", extra={"repository_id": repository.pk, "path": path})
        return DeletionOutcome(repository_id=repository_id, result="skipped", path=path, deleted_tags=sizes.deleted)
    logger.info(
        "container repository deleted",
        extra={"repository_id": repository.pk, "project_id": repository.project_id, "path": path, **sizes.log_fields()},
    )
    webhooks.request_deliveries(repository.project_id, [webhooks.RegistryChange("repository_delete", path)])
    return DeletionOutcome(repository_id=repository_id, result="deleted", path=path, deleted_tags=sizes.deleted)


@dataclass(frozen=True)
class TagSizes:
    """How many tags the repository held before the deletion, and how many it deleted."""

    before_delete: int
    deleted: int

    def log_fields(self) -> dict[str, int]:
        # GitLab's field names in its deletion worker's log line.
        return {"tags_size_before_delete": self.before_delete, "deleted_tags_size": self.deleted}


def _delete_all_tags(repository: ContainerRepository, *, client: RegistryClient | None) -> TagSizes:
    """Delete every tag; raise ``DeletionIncomplete`` if the registry still lists some."""
    client = client or get_client()
    tags = _list_tags(client, repository.path)
    deleted = list(client.delete_tags(repository.path, tags)) if tags else []
    remaining = _list_tags(client, repository.path)
    if remaining:
        raise DeletionIncomplete(
            f"{len(remaining)} tag(s) still in the registry after deleting {len(deleted)} of {len(tags)}"
        )
    return TagSizes(before_delete=len(tags), deleted=len(deleted))


def _list_tags(client: RegistryClient, path: str) -> list[str]:
    try:
        return list(client.list_tags(path) or [])
    except RegistryNotFound:
        # A repository the registry never stored (created at token time, never pushed):
        # there is nothing to delete.
        return []


# --- Failures -----------------------------------------------------------------------------------


def backoff_wait(failed_count: int) -> dt.timedelta:
    """2^count minutes plus a jitter of up to ``BACKOFF_JITTER_FRACTION`` of that."""
    base = ContainerRepository.backoff_delay(failed_count)
    return base + base * random.uniform(0, BACKOFF_JITTER_FRACTION)


def _fail(
    repository: ContainerRepository, exc: BaseException, *, now: dt.datetime | None, sizes: TagSizes | None = None
) -> DeletionOutcome:
    message = scrub_error(f"{type(exc).__name__}: {exc}")
    logger.warning(
        "container repository deletion failed",
        exc_info=not isinstance(exc, RegistryError | DeletionIncomplete),
        extra={
            "repository_id": repository.pk,
            "path": repository.path,
            "error": message,
            **(sizes.log_fields() if sizes else {}),
        },
    )
    status = record_deletion_failure(repository=repository, message=message, now=now)
    result = "failed" if status == Status.DELETE_FAILED else "rescheduled"
    deleted = sizes.deleted if sizes else 0
    return DeletionOutcome(
        repository_id=repository.pk, result=result, path=repository.path, deleted_tags=deleted, error=message
    )


def record_deletion_failure(*, repository: ContainerRepository, message: str, now: dt.datetime | None = None) -> str:
    """Record a failed attempt on a claimed repository and apply GitLab's backoff.

    Below 10 failures: count + 1, back to ``delete_scheduled``, next attempt after
    2^(count before the increment) minutes. At 10: ``delete_failed``. The error message
    (already scrubbed) and its time are kept. Returns the new status.
    """
    now = now or timezone.now()
    count = repository.failed_deletion_count
    fields = {
        "delete_started_at": None,
        "status_updated_at": now,
        "last_deletion_error": scrub_error(message),
        "last_deletion_error_at": now,
    }
    if count >= MAX_DELETION_FAILURES:
        fields.update(status=Status.DELETE_FAILED, next_delete_attempt_at=None)
    else:
        fields.update(
            status=Status.DELETE_SCHEDULED,
            failed_deletion_count=count + 1,
            next_delete_attempt_at=now + backoff_wait(count),
        )
    with transaction.atomic():
        changed = ContainerRepository.objects.filter(pk=repository.pk, status=Status.DELETE_ONGOING).update(**fields)
        if changed and fields["status"] == Status.DELETE_FAILED:
            record_repository_event(
                repository,
                "container_repository_deletion_failed",
                f"Deletion failed for good after {count} retries: {fields['last_deletion_error']}",
            )
    return fields["status"]


_SECRET_PATTERNS = (
    # user:password@ in URLs
    (re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@", re.I), r"\g<scheme>[FILTERED]@"),
    # Authorization header values
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I), r"\1 [FILTERED]"),
    # JWTs anywhere
    (re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), "[FILTERED]"),
    # token=..., password=..., secret=... in query strings or messages
    (re.compile(r"\b([\w-]*(?:token|password|secret)[\w-]*)=([^&\s\"']+)", re.I), r"\1=[FILTERED]"),
)


def scrub_error(message: str) -> str:
    """The message with credentials removed, cut to ``MAX_ERROR_LENGTH`` characters."""
    for pattern, replacement in _SECRET_PATTERNS:
        message = pattern.sub(replacement, message)
    if len(message) > MAX_ERROR_LENGTH:
        message = message[: MAX_ERROR_LENGTH - 3] + "..."
    return message
