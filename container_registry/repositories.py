"""Creating container repository rows, race-safe.

Two pushes of a new image arrive at ``/jwt/auth`` at the same moment; both must end up
with the same row and neither may fail. The unique ``(project, name)`` constraint
decides: the loser's INSERT fails inside a savepoint and it reads the winner's row.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from container_registry.models import ContainerRepository
from projects.models import Project

DELETION_STATUSES = frozenset(
    {
        ContainerRepository.Status.DELETE_SCHEDULED,
        ContainerRepository.Status.DELETE_ONGOING,
        ContainerRepository.Status.DELETE_FAILED,
    }
)


def ensure_repository(*, project: Project, name: str) -> ContainerRepository | None:
    """The repository ``name`` ("" for the root image) of ``project``, created if missing.

    Returns None, and creates nothing, when the existing row is being deleted
    (``delete_scheduled``, ``delete_ongoing`` or ``delete_failed``): a repository on its
    way out must not be revived by a push token. Works on SQLite and PostgreSQL, inside
    or outside an outer transaction (the INSERT runs in its own savepoint).
    """
    repository = ContainerRepository.objects.filter(project=project, name=name).first()
    if repository is None:
        try:
            with transaction.atomic():
                repository = ContainerRepository.objects.create(project=project, name=name)
        except IntegrityError:
            repository = ContainerRepository.objects.filter(project=project, name=name).first()
            if repository is None:
                # Created and deleted again between our INSERT and this read.
                return None
    if repository.status in DELETION_STATUSES:
        return None
    return repository
