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

# GitLab maps an image path to a project at most two levels below the project path.
MAX_IMAGE_DEPTH = 2


def _lookup_namespace_or_project(model, raw_id: str):
    if raw_id.isdigit():
        return model.objects.filter(pk=int(raw_id)).first()
    return model.objects.filter(full_path_lower=raw_id.lower()).first()


def project_for_api(*, actor: permissions.Actor, raw_id: str) -> Project:
    """The project named by an id or full path that ``actor`` can see and whose
    registry it may read (contract §4.7 checks 2 and 3)."""
    project = _lookup_namespace_or_project(Project, raw_id)
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
    group = _lookup_namespace_or_project(Namespace, raw_id)
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
    projects = Project.objects.filter(namespace_id__in=group.self_and_descendant_ids(), pending_delete=False)
    readable = [
        p.pk
        for p in projects.select_related("namespace")
        if permissions.can(actor, permissions.READ_CONTAINER_IMAGE, p)
    ]
    return ContainerRepository.objects.filter(project_id__in=readable).select_related("project").order_by("id")


def repository_by_id(*, repository_id: int) -> ContainerRepository | None:
    repository = ContainerRepository.objects.select_related("project").filter(pk=repository_id).first()
    if repository is None or repository.project.pending_delete:
        return None
    return repository


def project_for_image_path(path: str) -> tuple[Project, str] | None:
    """The project an image path belongs to and the image name below it: the longest
    project path that prefixes ``path`` with at most two more components."""
    return projects_for_image_paths([path]).get(path)


def projects_for_image_paths(paths: list[str]) -> dict[str, tuple[Project, str]]:
    """``project_for_image_path`` for many paths with one query."""
    wanted: dict[str, dict[str, int]] = {}
    for path in paths:
        parts = path.lower().strip("/").split("/")
        wanted[path] = {"/".join(parts[:n]): n for n in range(len(parts), 0, -1) if len(parts) - n <= MAX_IMAGE_DEPTH}
    every = {c for candidates in wanted.values() for c in candidates}
    by_path = {p.full_path_lower: p for p in Project.objects.filter(full_path_lower__in=list(every))}
    result: dict[str, tuple[Project, str]] = {}
    for path, candidates in wanted.items():
        found = [c for c in candidates if c in by_path]
        if found:
            best = max(found, key=lambda c: candidates[c])
            parts = path.lower().strip("/").split("/")
            result[path] = (by_path[best], "/".join(parts[candidates[best] :]))
    return result
