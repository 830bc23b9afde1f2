"""Writes to groups, projects, memberships and deploy tokens."""

from __future__ import annotations

from gitlab_core.models import User
from projects.models import Namespace, Project


def create_project_records(
    *,
    namespace: Namespace,
    path: str,
    name: str,
    creator: User | None,
    visibility: int,
    description: str | None = None,
    container_registry_access_level: str = "enabled",
) -> Project:
    """Create a project row. The container registry app adds its default cleanup policy
    through ``post_save`` (GitLab creates one with every project)."""
    return Project.objects.create(
        namespace=namespace,
        path=path,
        name=name,
        creator=creator,
        visibility=visibility,
        description=description,
        container_registry_access_level=container_registry_access_level,
    )
