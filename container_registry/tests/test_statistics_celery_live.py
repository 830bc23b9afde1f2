"""The debounced registry size refresh with a real Celery worker on Redis (not eager),
the real registry and our receiver. Runs in the PostgreSQL + Redis pass of the test script."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from container_registry.models import ContainerRepository, ProjectRegistryStatistics
from container_registry.statistics import pending_key
from container_registry.tests.test_e2e_registry import stored_bytes
from tests_support.celery_live import live_celery
from tests_support.factories import make_group, make_project, make_user
from tests_support.registry import build_image, skopeo, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.celery_live, pytest.mark.django_db(transaction=True)]

PASSWORD = "password123"


def test_a_burst_of_pushes_is_measured_once_by_the_worker(registry, tmp_path, settings):
    settings.REGISTRY_SIZE_REFRESH_DELAY_SECONDS = 5
    owner = make_user("owner", password=PASSWORD)
    project = make_project(make_group("acme", owner=owner), "svc", creator=owner)
    cache.delete(pending_key(project.pk))  # left in Redis by an earlier run's project of this id
    creds = f"owner:{PASSWORD}"
    layout = tmp_path / "layout"
    images = [build_image(layout, size=10_000 * (i + 1), seed=f"s{i}", tag=f"t{i}") for i in range(3)]
    with live_celery() as celery:
        started = time.monotonic()
        for i, image in enumerate(images):
            skopeo("copy", image, registry.ref(f"acme/svc/img{i}", "v1"), creds=creds)
        pushed_in = time.monotonic() - started

        def measured() -> bool:
            stats = ProjectRegistryStatistics.objects.filter(project=project).first()
            return stats is not None and stats.refreshed_at is not None and not stats.stale

        try:
            wait_until(measured, timeout=90, message="the worker's refresh")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{celery.log()}") from None
        expected = stored_bytes(registry.data_dir, [f"acme/svc/img{i}" for i in range(3)])
        assert ContainerRepository.objects.filter(project=project, push_count=1).count() == 3
        assert ProjectRegistryStatistics.objects.get(project=project).container_registry_size == expected
        runs = celery.log().count("container_registry.refresh_registry_size[")
    # One task received and one succeeded for the three pushes, when they came within
    # the delay (on a loaded machine they may not, and a second run is then right).
    if pushed_in < settings.REGISTRY_SIZE_REFRESH_DELAY_SECONDS:
        assert runs == 2, celery.log()
