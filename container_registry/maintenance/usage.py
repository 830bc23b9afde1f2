"""Registry storage usage: how much disk each project's images take.

Counted from the registry API as the registry stores it: every manifest, config and
layer blob reachable from a project's tags, each distinct digest once per project (two
images sharing a base layer store it once). Blobs no tag reaches any more (deleted tags
before garbage collection) are not counted.

    from container_registry import maintenance
    rows = maintenance.registry_usage(limit=20)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from container_registry.client import RegistryClient, get_client
from container_registry.errors import RegistryNotFound
from container_registry.models import ContainerRepository
from container_registry.services import store_registry_size
from projects.image_paths import resolve_image_paths
from projects.models import Project


@dataclass(frozen=True)
class UsageRow:
    project_id: int
    creator_id: int | None
    registry_size_bytes: int
    project_path: str


Progress = Callable[[int, int, str], None]


def image_blobs(paths: Iterable[str], *, client: RegistryClient | None = None) -> dict[str, int]:
    """Every blob (digest -> size) reachable from the tags of the image ``paths``."""
    client = client or get_client()
    blobs: dict[str, int] = {}
    for path in paths:
        for tag in client.list_tags(path):
            try:
                blobs.update(client.manifest_blobs(path, tag))
            except RegistryNotFound:
                continue  # deleted since the listing
    return blobs


def repository_size(repository: ContainerRepository, *, client: RegistryClient | None = None) -> int:
    """Deduplicated bytes of one repository (the API's ``size``)."""
    return sum(image_blobs([repository.path], client=client).values())


def _paths_by_project(client: RegistryClient) -> dict[int, set[str]]:
    paths: dict[int, set[str]] = defaultdict(set)
    for repo in ContainerRepository.objects.select_related("project").filter(project__pending_delete=False):
        paths[repo.project_id].add(repo.path)
    # Images the registry holds without a row (pushed before the row existed) count too.
    catalog = list(client.catalog())
    for path, target in resolve_image_paths(catalog).items():
        if not target.project.pending_delete:
            paths[target.project.pk].add(path.lower())
    return paths


def registry_usage(
    limit: int | None = None, progress: Progress | None = None, *, client: RegistryClient | None = None
) -> list[UsageRow]:
    """Registry bytes per project, largest first (at most ``limit`` rows). Also stores
    each project's size in its registry statistics. ``progress(done, total, path)`` is
    called after each project. Raises the registry client's errors."""
    client = client or get_client()
    paths = _paths_by_project(client)
    projects = Project.objects.in_bulk(list(paths))
    rows: list[UsageRow] = []
    total = len(paths)
    for done, (project_id, project_paths) in enumerate(sorted(paths.items()), start=1):
        project = projects[project_id]
        size = sum(image_blobs(sorted(project_paths), client=client).values())
        store_registry_size(project_id=project_id, size=size)
        rows.append(UsageRow(project_id, project.creator_id, size, project.full_path))
        if progress is not None:
            progress(done, total, project.full_path)
    rows.sort(key=lambda row: (-row.registry_size_bytes, row.project_id))
    return rows[:limit] if limit is not None else rows


__all__ = ["UsageRow", "image_blobs", "registry_usage", "repository_size"]
