"""The one rule for group and project paths: the API's services and the admin's forms
both ask ``path_problems``.

A path has GitLab's format (letters, digits, ``_``, ``-`` and ``.``; no ``-`` or ``.``
at either end; not ending in ``.git`` or ``.atom``: the rule usernames follow too) and
its full path is free: projects and namespaces (groups and personal namespaces) share one
path space, compared without case.
"""

from __future__ import annotations

from gitlab_core.services import valid_path
from projects.models import Namespace, Project

MAX_PATH_LENGTH = 255
PATH_PROBLEM = (
    "can contain only letters, digits, '_', '-' and '.'. Cannot start or end with '-' or '.', "
    "end in '.git' or end in '.atom'"
)
TAKEN = "has already been taken"


def full_path_taken(full_path: str, *, exclude_project: int | None = None) -> bool:
    """Whether a project or a namespace already holds ``full_path`` (in any case)."""
    lowered = full_path.lower()
    projects = Project.objects.filter(full_path_lower=lowered)
    if exclude_project is not None:
        projects = projects.exclude(pk=exclude_project)
    return projects.exists() or Namespace.objects.filter(full_path_lower=lowered).exists()


def path_problems(path: str, *, parent: Namespace | None, exclude_project: int | None = None) -> list[str]:
    """What is wrong with ``path`` for a new group or project under ``parent`` (None: a
    top-level group): ``[PATH_PROBLEM]``, ``[TAKEN]`` or nothing. ``exclude_project``:
    the project being renamed, which may keep its own path."""
    if not isinstance(path, str) or len(path) > MAX_PATH_LENGTH or not valid_path(path):
        return [PATH_PROBLEM]
    full_path = f"{parent.full_path}/{path}" if parent is not None else path
    if full_path_taken(full_path, exclude_project=exclude_project):
        return [TAKEN]
    return []
