"""Celery tasks that delete container repositories (GitLab's ContainerRegistry::CleanupWorker
and DeleteContainerRepositoryWorker).

The backoff between attempts lives in the database (``next_delete_attempt_at``), not in
Celery retries: a failed attempt is recorded by the service and the periodic task picks
the repository up again when its wait is over. A task killed mid-way leaves the repository
``delete_ongoing``; the periodic task resets it after 30 minutes.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings

from container_registry import deletion
from gitlab_core.celery import app
from workers.base import RegistryTask

__all__ = ["delete_repository", "schedule_repository_deletions"]

logger = logging.getLogger(__name__)

# At most this many deletion tasks are enqueued per periodic run; the rest wait 5 minutes.
MAX_ENQUEUED_PER_RUN = 200
# A deletion task must be dead (hard limit) before the stale reset could hand its
# repository to another run (30 minutes after the claim).
_STALE_SECONDS = int(deletion.STALE_DELETION_AFTER / timedelta(seconds=1))
DELETE_SOFT_TIME_LIMIT = min(settings.CELERY_TASK_SOFT_TIME_LIMIT, _STALE_SECONDS - 300)
DELETE_TIME_LIMIT = min(settings.CELERY_TASK_TIME_LIMIT, _STALE_SECONDS - 120)


@app.task(name="container_registry.schedule_repository_deletions", base=RegistryTask, autoretry_for=())
def schedule_repository_deletions() -> int:
    """Every 5 minutes: reset stale deletions, then enqueue one ``delete_repository`` task
    per repository whose deletion is due. Returns how many were enqueued."""
    due = deletion.schedule_due_deletions(limit=MAX_ENQUEUED_PER_RUN)
    for repository_id in due:
        delete_repository.apply_async(args=[repository_id])
    if due:
        logger.info("repository deletions enqueued", extra={"repositories": len(due)})
    return len(due)


@app.task(
    name="container_registry.delete_repository",
    base=RegistryTask,
    autoretry_for=(),
    soft_time_limit=DELETE_SOFT_TIME_LIMIT,
    time_limit=DELETE_TIME_LIMIT,
)
def delete_repository(repository_id: int) -> str:
    """Delete one repository (claim, delete its tags, remove the row). A second run, or a
    run for a repository that is not due or gone, does nothing. Returns the outcome."""
    return deletion.delete_repository(repository_id=repository_id).result
