"""Creating container repository rows, race-safe.

Two pushes of a new image arrive at ``/jwt/auth`` at the same moment; both must end up
with the same row and neither may fail. The unique ``(project, name)`` constraint
decides: the loser's INSERT fails inside a savepoint and it reads the winner's row.

The token realm asks for the same rows again and again (every push token of an image),
so each process remembers for a short while (``REGISTRY_REPOSITORY_CACHE_SECONDS``,
default 60) which rows it has seen committed, and skips the database for them.
Remembering only ever skips a write: it cannot revive a repository being deleted. Its
staleness window is the TTL: when another process deletes a remembered row, a push
within the window gets its token without the row being created again here; the
registry's push event then creates it (``container_registry.events``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models.signals import post_delete, post_migrate
from django.dispatch import receiver

from container_registry.models import ContainerRepository
from gitlab_core.ttl_cache import TTLCache
from projects.models import Project

DEFAULT_CACHE_SECONDS = 60


def _cache_seconds() -> float:
    return getattr(settings, "REGISTRY_REPOSITORY_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)


# (project id, repository name) of rows seen committed. A name is at most 255 characters:
# 100,000 of them stay under 64 MiB.
_known = TTLCache(ttl=_cache_seconds, max_entries=100_000, max_bytes=64 * 1024 * 1024)

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


def ensure_repository_exists(*, project: Project, name: str) -> None:
    """Make sure the repository row ``name`` of ``project`` exists, as ``ensure_repository``
    does, but without touching the database when this process saw the row committed less
    than ``REGISTRY_REPOSITORY_CACHE_SECONDS`` ago."""
    key = (project.pk, name)
    if _known.get(key):
        return
    generation = _known.generation
    repository = ensure_repository(project=project, name=name)
    if repository is not None:
        # Only after commit: a row created in a transaction that rolls back was never there.
        transaction.on_commit(lambda: _known.set(key, True, generation=generation))


@receiver(post_delete, sender=ContainerRepository, dispatch_uid="container_registry.repositories.forget")
def _forget_deleted(sender, instance: ContainerRepository, **kwargs) -> None:
    # Deletions in this process take effect at once; other processes' after the TTL.
    _known.pop((instance.project_id, instance.name))


@receiver(post_migrate, dispatch_uid="container_registry.repositories.database_reset")
def _forget_all(sender, **kwargs) -> None:
    # Also sent when a database is flushed (between transactional tests).
    _known.clear()
