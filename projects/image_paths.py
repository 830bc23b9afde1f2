"""How an image path maps to its project: GitLab's rule, the one every caller uses (the
token realm, the event receiver, the registry API and maintenance commands).

An image path is a project's full path followed by at most two more components (the
image name below the project, empty for the project's own image). The longest project
path that prefixes it wins: ``g/p/a`` belongs to project ``g/p/a`` when it exists, else
to ``g/p`` (image ``a``). That choice is one SQL expression (``longest_project_sql``),
in every statement that resolves an image path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import re2

from gitlab_core.models import User
from projects.models import DeployToken, Project
from projects.permissions import ProjectAccess, candidates_found, candidates_statement, projects_for_candidates

# GitLab's ContainerRegistry::Path rule. RE2 runs in linear time: the nested
# quantifiers of this pattern backtrack exponentially in Python's ``re``.
PATH_REGEX = re2.compile(r"[a-z0-9]+(?:(?:[._/]|__|-*)[a-z0-9])*")
# distribution's limit on a repository name.
MAX_PATH_LENGTH = 255
MIN_COMPONENTS = 2
# Namespace::NUMBER_OF_ANCESTORS_ALLOWED: a path has fewer than 20 components.
MAX_COMPONENTS = 19
# The project path plus at most two image levels (GitLab's LEVELS_SUPPORTED).
LEVELS_SUPPORTED = 3
# A project path has a namespace and a project name at least.
MIN_PROJECT_COMPONENTS = 2


def valid_image_path(path: str) -> bool:
    """GitLab's container registry path rule (``path`` already lower-cased)."""
    if len(path) > MAX_PATH_LENGTH or PATH_REGEX.fullmatch(path) is None:
        return False
    return MIN_COMPONENTS <= path.count("/") + 1 <= MAX_COMPONENTS


@dataclass(frozen=True)
class ImagePath:
    """An image path (lower-cased) resolved to its project."""

    path: str
    project: Project
    # The image below the project path ("" for the project's own image).
    repository_name: str
    root_namespace_id: int | None
    # The user's effective access level on the project (None: no membership, or no user).
    access_level: int | None
    # Whether the deploy token asked about reaches the project.
    deploy_token_access: bool = False
    # Whether the project has container repository protection rules.
    has_protection_rules: bool = False


def candidate_project_paths(path: str) -> list[str]:
    """Project paths ``path`` may belong to, longest first (at most three)."""
    parts = path.lower().split("/")
    longest = len(parts)
    shortest = max(MIN_PROJECT_COMPONENTS, longest - LEVELS_SUPPORTED + 1)
    return ["/".join(parts[:n]) for n in range(longest, shortest - 1, -1)]


def longest_project_sql(candidates: Sequence[str]) -> str:
    """The rule's choice in SQL, for the statements that resolve image paths themselves
    (the access statement of ``resolve_image_paths``, the event receiver's writes): the
    id of the project the image belongs to, the first of its candidate project paths,
    longest first, that is a project's full path; NULL when none is. ``candidates`` are
    ``LEVELS_SUPPORTED`` SQL expressions, the image's ``candidate_project_paths`` padded
    with NULLs (``padded_candidates``). Each is one lookup by the path index, and
    ``COALESCE`` stops at the first that finds a project (one query over all of them,
    sorted by length, cost PostgreSQL a quarter more)."""
    assert len(candidates) == LEVELS_SUPPORTED
    lookups = ", ".join(
        f"(SELECT q.id FROM {Project._meta.db_table} q WHERE q.full_path_lower = {candidate})"
        for candidate in candidates
    )
    return f"COALESCE({lookups})"


def padded_candidates(path: str) -> list[str | None]:
    """``candidate_project_paths`` padded with None to ``LEVELS_SUPPORTED`` values."""
    candidates = candidate_project_paths(path)
    return [*candidates, *[None] * (LEVELS_SUPPORTED - len(candidates))]


def resolve_image_paths(
    paths: Iterable[str], *, user: User | None = None, deploy_token: DeployToken | None = None
) -> dict[str, ImagePath]:
    """Each image path's project (pending deletion too: callers refuse it), keyed by the path as given,
    with ``user``'s access level, whether ``deploy_token`` reaches it and the root
    namespace id: one query in all. Paths of no project are left out."""
    found = projects_for_candidates(user=user, deploy_token=deploy_token, candidates=_candidates(paths))
    return _image_paths(found)


def resolution_statement(paths: Iterable[str], *, user_id: tuple[str, Sequence]) -> tuple[str, list, int] | None:
    """``resolve_image_paths``'s statement for a user given as SQL for its id and that
    SQL's parameters (``permissions.candidates_statement``), as (text, parameters, number
    of columns): for a caller that reads it beside the lookup that finds the user
    (``gitlab_core.db.fetch_side_by_side``). None without paths. ``resolution_of`` reads
    its rows."""
    return candidates_statement(candidates=_candidates(paths), user_id=user_id)


def resolution_of(rows: Iterable[Sequence]) -> dict[str, ImagePath]:
    """What ``resolve_image_paths`` answers, from ``resolution_statement``'s rows."""
    return _image_paths(candidates_found(rows, with_user=True))


def _candidates(paths: Iterable[str]) -> dict[str, list[str]]:
    return {path: candidate_project_paths(path) for path in paths}


def _image_paths(found: dict[str, ProjectAccess]) -> dict[str, ImagePath]:
    resolved = {}
    for path, hit in found.items():
        lowered = path.lower()
        resolved[path] = ImagePath(
            path=lowered,
            project=hit.project,
            repository_name=lowered[len(hit.project.full_path_lower) + 1 :],
            root_namespace_id=hit.root_namespace_id,
            access_level=hit.access_level,
            deploy_token_access=hit.deploy_token_access,
            has_protection_rules=hit.has_protection_rules,
        )
    return resolved
