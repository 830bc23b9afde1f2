"""Maintenance functions for repository deletion: the administrator's way back from
``delete_failed``, and running due deletions without a worker.

::

    from container_registry import maintenance
    maintenance.retry_failed_deletions(all=True, dry_run=True)
    maintenance.retry_failed_deletions(project="acme/platform/svc")
    maintenance.process_repository_deletions()
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from container_registry import deletion
from container_registry.models import MAX_DELETION_FAILURES, ContainerRepository
from container_registry.services import record_repository_event
from projects.models import Project

__all__ = [
    "DeletionRunSummary",
    "RetryFailedResult",
    "process_repository_deletions",
    "retry_failed_deletions",
]

logger = logging.getLogger(__name__)

Status = ContainerRepository.Status


@dataclass
class RetryFailedResult:
    """Repositories put back (or that would be, with ``dry_run``), and those named
    explicitly that were not in ``delete_failed``."""

    repositories: list[ContainerRepository] = field(default_factory=list)
    not_failed: list[ContainerRepository] = field(default_factory=list)
    dry_run: bool = False

    @property
    def count(self) -> int:
        return len(self.repositories)


def retry_failed_deletions(
    *,
    repository_id: int | None = None,
    project: int | str | Project | None = None,
    all: bool = False,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> RetryFailedResult:
    """Put ``delete_failed`` repositories back to ``delete_scheduled`` with a failure count
    of 0, so that the next run tries again and up to ten retries follow.

    Exactly one of ``repository_id``, ``project`` (id, full path, or Project) or ``all``
    selects the repositories. With ``dry_run`` nothing changes. The last error stays on
    the repository until the deletion succeeds. Raises ``ValueError`` for a bad
    selection and ``LookupError`` for an unknown repository or project.
    """
    if sum(x is not None and x is not False for x in (repository_id, project, all)) != 1:
        raise ValueError("choose exactly one of a repository, a project, or all")
    now = now or timezone.now()
    result = RetryFailedResult(dry_run=dry_run)
    selected = ContainerRepository.objects.select_related("project").order_by("id")
    if repository_id is not None:
        selected = selected.filter(pk=repository_id)
        if not selected.exists():
            raise LookupError(f"container repository {repository_id} not found")
    elif project is not None:
        selected = selected.filter(project=_find_project(project))
    result.repositories = list(selected.filter(status=Status.DELETE_FAILED))
    if repository_id is not None or project is not None:
        result.not_failed = list(selected.exclude(status=Status.DELETE_FAILED))
    if dry_run or not result.repositories:
        return result
    with transaction.atomic():
        # Locked, so that each repository put back gets exactly one audit event.
        failed = list(
            ContainerRepository.objects.filter(pk__any=[r.pk for r in result.repositories], status=Status.DELETE_FAILED)
            .select_related("project")
            .select_for_update(of=("self",))
        )
        changed = ContainerRepository.objects.filter(pk__any=[r.pk for r in failed]).update(
            status=Status.DELETE_SCHEDULED,
            status_updated_at=now,
            failed_deletion_count=0,
            next_delete_attempt_at=None,
            delete_started_at=None,
        )
        for repository in failed:
            record_repository_event(
                repository,
                "container_repository_deletion_retried",
                f"Deletion scheduled again after {repository.failed_deletion_count} failed retries",
            )
    logger.info("failed repository deletions scheduled again", extra={"repositories": changed})
    return result


def _find_project(ref: int | str | Project) -> Project:
    if isinstance(ref, Project):
        return ref
    text = str(ref).strip()
    query = Q(pk=int(text)) if text.isdigit() else Q(full_path_lower=text.strip("/").lower())
    found = Project.objects.filter(query).first()
    if found is None:
        raise LookupError(f"project {text!r} not found")
    return found


@dataclass
class DeletionRunSummary:
    """What one foreground run did."""

    stale_reset: int = 0
    outcomes: list[deletion.DeletionOutcome] = field(default_factory=list)

    def count(self, result: str) -> int:
        return sum(1 for o in self.outcomes if o.result == result)

    def __str__(self) -> str:
        return (
            f"{len(self.outcomes)} due, {self.count('deleted')} deleted, "
            f"{self.count('rescheduled')} rescheduled, {self.count('failed')} now delete_failed "
            f"(after {MAX_DELETION_FAILURES} retries), {self.count('error')} crashed, {self.count('skipped')} skipped, "
            f"{self.stale_reset} stale reset"
        )


def process_repository_deletions(
    *,
    now: dt.datetime | None = None,
    limit: int | None = None,
    progress: Callable[[deletion.DeletionOutcome], None] | None = None,
) -> DeletionRunSummary:
    """Run due repository deletions once, in this process (for operators without a
    worker): reset stale deletions, then delete every due repository in turn.

    A repository whose deletion raises an unexpected error is recorded as failed (the
    service already counted the failure) and the run goes on with the next one.
    """
    # Each claim is stamped when it is made (unless a caller moves time): a claim dated
    # back to the start of a long run would look stale to the periodic reset too early.
    claim_time = now
    now = now or timezone.now()
    summary = DeletionRunSummary(stale_reset=deletion.reset_stale_deletions(now=now))
    for repository_id in deletion.schedule_due_deletions(now=now, limit=limit):
        try:
            outcome = deletion.delete_repository(repository_id=repository_id, now=claim_time)
        except Exception as exc:  # noqa: BLE001  (command boundary: logged, counted, next one)
            logger.exception("repository deletion crashed", extra={"repository_id": repository_id})
            outcome = deletion.DeletionOutcome(
                repository_id=repository_id, result="error", error=deletion.scrub_error(str(exc))
            )
        summary.outcomes.append(outcome)
        if progress is not None:
            progress(outcome)
    return summary
