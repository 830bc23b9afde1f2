"""Celery task that keeps the registry events table from growing without end."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings

from container_registry import events
from gitlab_core.celery import app

__all__ = ["prune_registry_events"]

logger = logging.getLogger(__name__)


@app.task(name="container_registry.prune_registry_events")
def prune_registry_events() -> int:
    """Daily: delete recorded event ids older than ``REGISTRY_EVENT_RETENTION_DAYS``
    (0 keeps them). Returns how many were deleted."""
    days = settings.REGISTRY_EVENT_RETENTION_DAYS
    if days <= 0:
        return 0
    deleted = events.prune_recorded_events(older_than=timedelta(days=days))
    logger.info("registry event ids pruned", extra={"deleted": deleted, "retention_days": days})
    return deleted
