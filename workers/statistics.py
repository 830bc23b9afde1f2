"""Celery tasks that keep projects' registry sizes current (``container_registry.statistics``)."""

from __future__ import annotations

from django.dispatch import receiver

from container_registry import statistics
from container_registry.signals import registry_size_refresh_requested
from gitlab_core.celery import app
from workers.base import RegistryTask

__all__ = ["refresh_registry_size", "refresh_stale_registry_sizes"]


@app.task(name="container_registry.refresh_registry_size", base=RegistryTask)
def refresh_registry_size(project_id: int) -> int | None:
    """Measure one project's registry size and store it. Returns the size (None when the
    project is gone); transient registry faults are retried with backoff."""
    return statistics.refresh_registry_size(project_id=project_id)


@app.task(name="container_registry.refresh_stale_registry_sizes", base=RegistryTask, autoretry_for=())
def refresh_stale_registry_sizes() -> int:
    """Every 30 minutes: ask again for the sizes still stale. Returns how many were enqueued."""
    return len(statistics.refresh_stale_sizes())


@receiver(registry_size_refresh_requested, dispatch_uid="workers.enqueue_registry_size_refresh")
def enqueue_registry_size_refresh(sender, *, project_id: int, countdown: int, **kwargs) -> None:
    # No publishing retries: the event receiver is waiting, and a refresh that could not
    # be sent stays owed (the stale flag; the sweep asks again).
    refresh_registry_size.apply_async(args=[project_id], countdown=countdown, retry=False)
