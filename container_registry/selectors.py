"""Reads of container repositories, scoped by what the caller may see.

Permission questions are answered by ``projects.permissions``; this module only finds
rows and turns "may not see" into the 404s GitLab gives.
"""

from __future__ import annotations

from django.db.models import QuerySet

from container_registry.models import ContainerRepository
from gitlab_core.errors import forbidden, not_found
from projects import permissions
from projects.models import Namespace, Project
from projects.selectors import lookup_by_id_or_path


def project_for_api(*, actor: permissions.Actor, raw_id: str) -> Project:
    """The project named by an id or full path that ``actor`` can see and whose
    registry it may read: 404 when it cannot be seen, 403 when its images cannot be read."""
    project = lookup_by_id_or_path(Project.objects.all(), raw_id)
    if project is None or project.pending_delete:
        raise not_found("Project")
    abilities = permissions.project_abilities(actor, project)
    if permissions.READ_PROJECT not in abilities:
        raise not_found("Project")
    if permissions.READ_CONTAINER_IMAGE not in abilities:
        raise forbidden()
    return project


def group_for_api(*, actor: permissions.Actor, raw_id: str) -> Namespace:
    """A group the actor can see (404 otherwise) and whose images it may list (403)."""
    group = lookup_by_id_or_path(Namespace.objects.all(), raw_id)
    if group is None or not group.is_group:
        raise not_found("Group")
    abilities = permissions.group_abilities(actor, group)
    if permissions.READ_GROUP not in abilities:
        raise not_found("Group")
    if permissions.READ_GROUP_CONTAINER_IMAGES not in abilities:
        raise forbidden()
    return group


def repository_in_project(*, project: Project, repository_id: int) -> ContainerRepository:
    repository = ContainerRepository.objects.filter(project=project, pk=repository_id).first()
    if repository is None:
        raise not_found()
    repository.project = project  # already loaded and checked
    return repository


def project_repositories(*, project: Project) -> QuerySet[ContainerRepository]:
    return ContainerRepository.objects.filter(project=project).select_related("project").order_by("id")


def group_repositories(*, actor: permissions.Actor, group: Namespace) -> QuerySet[ContainerRepository]:
    """Repositories of the projects in ``group`` and its subgroups whose registry the
    actor may read, by id."""
    readable = permissions.group_registry_projects(actor, group).values("pk")
    return ContainerRepository.objects.filter(project__in=readable).select_related("project").order_by("id")


def repository_by_id(*, repository_id: int) -> ContainerRepository | None:
    repository = ContainerRepository.objects.select_related("project").filter(pk=repository_id).first()
    if repository is None or repository.project.pending_delete:
        return None
    return repository
