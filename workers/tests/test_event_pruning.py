"""Pruning of recorded registry event ids (the de-duplication record)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from container_registry.models import RegistryEvent
from workers.events import prune_registry_events

pytestmark = pytest.mark.django_db


def _event(event_id: str, age: dt.timedelta) -> RegistryEvent:
    return RegistryEvent.objects.create(
        event_id=event_id, action="push", repository="g/p/image", tag="v1", received_at=timezone.now() - age
    )


def test_ids_past_the_retention_are_deleted_and_recent_ones_kept(settings):
    settings.REGISTRY_EVENT_RETENTION_DAYS = 14
    for i in range(7):
        _event(f"old-{i}", dt.timedelta(days=15, minutes=i))
    _event("recent", dt.timedelta(days=13))

    assert prune_registry_events() == 7
    assert list(RegistryEvent.objects.values_list("event_id", flat=True)) == ["recent"]
    assert prune_registry_events() == 0


def test_batches_delete_everything_due(settings):
    from container_registry import events

    for i in range(12):
        _event(f"old-{i}", dt.timedelta(days=30))
    assert events.prune_recorded_events(older_than=dt.timedelta(days=1), batch_size=5) == 12
    assert not RegistryEvent.objects.exists()


def test_zero_retention_keeps_every_id(settings):
    settings.REGISTRY_EVENT_RETENTION_DAYS = 0
    _event("ancient", dt.timedelta(days=3650))
    assert prune_registry_events() == 0
    assert RegistryEvent.objects.filter(event_id="ancient").exists()


def test_the_pruning_is_on_the_beat_schedule(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["registry-event-pruning"]
    assert entry["task"] == prune_registry_events.name
