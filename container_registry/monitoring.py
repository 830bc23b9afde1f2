"""This app's part of readiness and metrics: the registry check, the gauge of
repositories by deletion status and that of repositories held by the cleanup brake
(registered by ``ContainerRegistryConfig.ready``)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.metrics_core import GaugeMetricFamily

from container_registry.brake import held_repository_count
from container_registry.models import ContainerRepository
from container_registry.registry_info import registry_status
from gitlab_core.health import CheckFailed

logger = logging.getLogger(__name__)


def check_registry() -> dict:
    """Readiness: the registry answers ``GET /v2/``; shows its vendor and version and
    when the last event arrived (also when it fails). With the registry switched off
    (``REGISTRY_ENABLED=false``) there is nothing to ask."""
    if not settings.REGISTRY_ENABLED:
        return {"enabled": False}
    status = registry_status()
    if status.info is None:
        raise CheckFailed(status.error, detail=status.detail, **status.as_dict())
    return status.as_dict()


def repositories_by_status():
    """``container_repositories{status}``: rows by deletion status (``active``: none), one
    GROUP BY per scrape. Without the database the family is left out of the scrape."""
    family = GaugeMetricFamily(
        "container_repositories",
        "Container repositories by deletion status (active: not being deleted).",
        labels=["status"],
    )
    counts = {"active": 0, **{status: 0 for status in ContainerRepository.Status.values}}
    try:
        rows = ContainerRepository.objects.values_list("status").annotate(n=Count("pk")).order_by()
        for status, count in rows:
            counts[status or "active"] = count
    except DatabaseError as exc:
        logger.warning("repository counts left out of the metrics: %s", exc.__class__.__name__)
        return []
    for status, count in counts.items():
        family.add_metric([status], count)
    return [family]


def repositories_held_by_the_brake():
    """``container_repositories_cleanup_held``: repositories whose cleanup the brake holds
    until a Maintainer releases it (``container_registry.brake``), counted per scrape."""
    family = GaugeMetricFamily(
        "container_repositories_cleanup_held",
        "Container repositories whose cleanup the brake on mass deletion holds.",
    )
    try:
        family.add_metric([], held_repository_count())
    except DatabaseError as exc:
        logger.warning("held repository count left out of the metrics: %s", exc.__class__.__name__)
        return []
    return [family]
