"""Celery tasks that drive tag cleanup: the policy scheduler, one policy run per
repository, and the bulk tag deletion requested through the API.

Each task fetches ids and calls one service in ``container_registry``; the logic and its
tests live there. Tasks are idempotent: a policy run claims its repository with a
conditional UPDATE, so a duplicate delivery does nothing.
"""

from __future__ import annotations

import logging

from django.dispatch import receiver

from container_registry.cleanup import bulk_delete_for_user
from container_registry.errors import TransientRegistryError
from container_registry.scheduling import repositories_to_start, run_policy_cleanup
from container_registry.scheduling import schedule_cleanup_policies as schedule
from container_registry.signals import tag_cleanup_requested
from gitlab_core.celery import app
from workers.base import RegistryTask

logger = logging.getLogger(__name__)

__all__ = ["cleanup_container_repository", "cleanup_tags", "schedule_cleanup_policies", "start_cleanups"]


def start_cleanups(repository_ids: list[int]) -> None:
    """Enqueue one policy run per repository, after the current transaction commits."""
    for repository_id in repository_ids:
        cleanup_container_repository.delay_on_commit(repository_id)


@app.task(name="container_registry.schedule_cleanup_policies", base=RegistryTask)
def schedule_cleanup_policies() -> dict:
    """Beat, hourly at minute 50: disable the policies of projects without repositories,
    mark due repositories and start runs up to the worker capacity. Returns the counts
    (for the result backend and logs)."""
    report = schedule()
    start_cleanups(report.to_start)
    return {
        "stale_reset": report.stale_reset,
        "disabled": report.disabled,
        "marked": report.marked,
        "advanced": report.advanced,
        "started": report.to_start,
    }


@app.task(name="container_registry.cleanup_container_repository", base=RegistryTask, bind=True)
def cleanup_container_repository(self, repository_id: int) -> str:
    """Run the cleanup policy on one repository, then start the next waiting runs.

    A transient registry fault is raised after the run is recorded as unfinished, so the
    task is retried with backoff and resumes the run. Returns the outcome's result.
    """
    outcome = run_policy_cleanup(repository_id=repository_id)
    if outcome.result == "skipped":
        return outcome.result
    if isinstance(outcome.error, TransientRegistryError):
        raise outcome.error
    # Keep the capacity busy, like GitLab's limited-capacity worker; runs stopped by a
    # registry error wait for the hourly scheduler instead of looping.
    start_cleanups(repositories_to_start(include_errored=False))
    return outcome.result


@app.task(name="container_registry.cleanup_tags", base=RegistryTask, max_retries=3)
def cleanup_tags(user_id: int, repository_id: int, params: dict) -> dict:
    """The bulk tag deletion of the API (``DELETE .../tags``), on behalf of a user.

    Does nothing if the user or the repository is gone, or if the user may no longer
    delete images of the project. Transient registry faults are retried; the rerun is
    harmless because deleted tags are gone. Returns the deleted count.
    """
    result = bulk_delete_for_user(user_id=user_id, repository_id=repository_id, params=params)
    if result is None:
        return {"deleted": 0, "skipped": True}
    if isinstance(result.error, TransientRegistryError):
        raise result.error
    return {"deleted": result.deleted_size, "status": result.status}


@receiver(tag_cleanup_requested, dispatch_uid="workers.enqueue_tag_cleanup")
def enqueue_tag_cleanup(sender, *, user_id: int, repository_id: int, params: dict, **kwargs) -> None:
    cleanup_tags.delay_on_commit(user_id, repository_id, params)
