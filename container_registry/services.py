"""Writes of the container registry app that the API, the admin and tasks share."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from container_registry.client import RegistryClient
from container_registry.models import ContainerRepository, ProjectRegistryStatistics
from container_registry.registry_info import registry_info
from gitlab_core import audit
from gitlab_core.db import any_of, as_list_param, fetch_all
from gitlab_core.models import ApplicationSettings
from projects.models import Project

Status = ContainerRepository.Status


def schedule_repository_deletion(*, repository: ContainerRepository) -> ContainerRepository:
    """Mark a repository ``delete_scheduled`` so the deletion worker removes its tags and
    row; due at once (``next_delete_attempt_at = now``).

    Idempotent: a repository already scheduled or being deleted is left as it is (the
    worker owns ``delete_ongoing``). A ``delete_failed`` one is scheduled again; like
    GitLab, its failure count stays. Returns the repository as stored.
    """
    now = timezone.now()
    with transaction.atomic():
        scheduled = (
            ContainerRepository.objects.filter(pk=repository.pk)
            .filter(Q(status__isnull=True) | Q(status=Status.DELETE_FAILED))
            .update(status=Status.DELETE_SCHEDULED, status_updated_at=now, next_delete_attempt_at=now, updated_at=now)
        )
        if scheduled:
            record_repository_event(
                repository, "container_repository_deletion_scheduled", "Scheduled deletion of the container repository"
            )
    repository.refresh_from_db()
    return repository


def record_repository_event(repository: ContainerRepository, event_name: str, message: str) -> None:
    """Audit something that happened to a container repository, listed under its project."""
    audit.record(event_name, entity=repository.project, target=repository, message=message)


def mark_registry_size_stale(*, project_ids: set[int]) -> None:
    """Flag the projects' registry sizes for recomputation (events changed them); ids of
    projects that no longer exist are skipped."""
    if not project_ids:
        return
    vendor = connection.vendor
    projects = f"SELECT p.id AS project_id FROM {Project._meta.db_table} p WHERE {any_of('p.id', vendor)}"
    fetch_all(stale_sql(projects), [True, as_list_param(sorted(project_ids), vendor), True])


def stale_sql(projects: str) -> str:
    """The statement that marks projects' registry sizes stale, creating their statistics
    rows when missing; ``projects`` is a subquery whose ``project_id`` column names them
    (parameters: True, the subquery's, True). A row already stale is neither written nor
    locked, so concurrent pushes to one project do not queue behind each other's commit:
    the SELECT finds no row to insert, so ON CONFLICT never acts (its DO UPDATE locks the
    row, even behind a WHERE that turns the update down). Rows are taken in project order,
    so that two statements marking the same projects lock them in the same order."""
    table = ProjectRegistryStatistics._meta.db_table
    return (
        f"INSERT INTO {table} (project_id, container_registry_size, stale) "
        f"SELECT x.project_id, 0, %s FROM ({projects}) x "
        f"WHERE NOT EXISTS (SELECT 1 FROM {table} s WHERE s.project_id = x.project_id AND s.stale = %s) "
        "ORDER BY x.project_id ON CONFLICT (project_id) DO UPDATE SET stale = excluded.stale"
    )


def store_registry_size(*, project_id: int, size: int, mark_fresh: bool = True) -> None:
    """Record a freshly computed registry size of a project. ``mark_fresh=False`` leaves
    the stale flag alone (a refresh that cleared it before measuring: an event during the
    measurement has set it again)."""
    values = {"container_registry_size": size, "refreshed_at": timezone.now()}
    if mark_fresh:
        values["stale"] = False
    # UPDATE first, not update_or_create: a read-then-write transaction fails at once on
    # SQLite when the event receiver wrote in between.
    if not ProjectRegistryStatistics.objects.filter(project_id=project_id).update(**values):
        ProjectRegistryStatistics.objects.bulk_create(
            [ProjectRegistryStatistics(project_id=project_id, **{"stale": False, **values})], ignore_conflicts=True
        )


def record_registry_identity(*, client: RegistryClient | None = None) -> ApplicationSettings:
    """Read the registry's vendor, version and features (``registry_info``) into the
    application settings. Raises the registry client's errors."""
    info = registry_info(client=client)
    vendor, version, features = info.vendor, info.version, info.features
    with transaction.atomic():
        app_settings = ApplicationSettings.current()
        app_settings.container_registry_vendor = vendor
        app_settings.container_registry_version = version
        app_settings.container_registry_features = features
        app_settings.save(
            update_fields=[
                "container_registry_vendor",
                "container_registry_version",
                "container_registry_features",
                "updated_at",
            ]
        )
    return app_settings
