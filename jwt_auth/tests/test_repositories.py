"""``container_registry.repositories.ensure_repository``."""

from __future__ import annotations

import pytest
from django.db.models import QuerySet

from container_registry.models import ContainerRepository
from container_registry.repositories import ensure_repository

pytestmark = pytest.mark.django_db


def test_creates_the_row_once(world):
    first = ensure_repository(project=world["project"], name="img")
    second = ensure_repository(project=world["project"], name="img")
    assert first.pk == second.pk
    assert ContainerRepository.objects.count() == 1


@pytest.mark.parametrize("status", ["delete_scheduled", "delete_ongoing", "delete_failed"])
def test_repository_being_deleted_is_not_returned(world, status):
    ContainerRepository.objects.create(project=world["project"], name="img", status=status)
    assert ensure_repository(project=world["project"], name="img") is None
    assert ContainerRepository.objects.get().status == status


def test_losing_the_insert_race_returns_the_winners_row(world, monkeypatch):
    # The race (another request inserts between our read and our INSERT) cannot be
    # scheduled deterministically; we make our first read miss a row that exists.
    winner = ContainerRepository.objects.create(project=world["project"], name="img")
    real_first = QuerySet.first
    calls = []

    def first_misses_once(self):
        calls.append(1)
        return None if len(calls) == 1 else real_first(self)

    monkeypatch.setattr(QuerySet, "first", first_misses_once)
    assert ensure_repository(project=world["project"], name="img").pk == winner.pk
    assert ContainerRepository.objects.count() == 1
