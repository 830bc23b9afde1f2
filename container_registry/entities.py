"""Response shapes of the registry API, as GitLab renders them."""

from __future__ import annotations

from container_registry.client import TagDetails
from container_registry.models import ContainerRepository
from gitlab_core.api.format import base_url, iso


def repository_api_path(request, repository: ContainerRepository) -> str:
    return f"{base_url(request)}/api/v4/projects/{repository.project_id}/registry/repositories/{repository.pk}"


def repository(
    repo: ContainerRepository,
    *,
    request,
    tags: list[str] | None = None,
    tags_count: int | None = None,
    size: int | None = None,
    with_size: bool = False,
    admin: bool = False,
) -> dict:
    """A Repository; ``tags``/``tags_count``/``size`` only when asked for, and
    ``delete_api_path`` only for callers who may delete it. ``last_deletion_error(_at)``
    are our extension: why the deletion worker failed last; so are
    ``cleanup_policy_held_at`` and ``cleanup_policy_held_plan``: when the mass-deletion
    brake held the policy's run, and what that run would have deleted."""
    data = {
        "id": repo.pk,
        "name": repo.name,
        "path": repo.path,
        "project_id": repo.project_id,
        "location": repo.location,
        "created_at": iso(repo.created_at),
        "cleanup_policy_started_at": iso(repo.expiration_policy_started_at),
        # Our extension: the brake on mass deletion held the policy's run (``brake.py``).
        "cleanup_policy_held_at": iso(repo.cleanup_held_at),
        "cleanup_policy_held_plan": repo.cleanup_held_plan,
        "status": repo.status or None,
        "last_deletion_error": repo.last_deletion_error,
        "last_deletion_error_at": iso(repo.last_deletion_error_at),
    }
    if tags_count is not None:
        data["tags_count"] = tags_count
    if tags is not None:
        data["tags"] = [tag(repo, name) for name in tags]
    if with_size:
        data["size"] = size
    if admin:
        data["delete_api_path"] = repository_api_path(request, repo)
    return data


def tag(repo: ContainerRepository, name: str) -> dict:
    return {"name": name, "path": f"{repo.path}:{name}", "location": f"{repo.location}:{name}"}


def tag_details(repo: ContainerRepository, details: TagDetails) -> dict:
    return {
        **tag(repo, details.name),
        "revision": details.revision,
        "short_revision": details.short_revision,
        "digest": details.digest,
        "created_at": iso(details.created_at),
        "total_size": details.total_size,
    }
