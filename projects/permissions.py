"""The one place that answers "what may this actor do here".

An actor is a ``User`` (possibly an instance admin), ``None`` for an anonymous caller,
or a ``DeployToken``. The REST API, the token realm and the admin pages ask these
functions; nothing else checks membership inline.

Abilities follow GitLab's ProjectPolicy/GroupPolicy for the parts this service needs.
A user's effective access level on a project or group is computed by one statement
(``projects_with_access_level`` / ``group_access_level``); an active membership is
``MembershipQuerySet.active`` (``ACTIVE_SQL`` in those statements).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from gitlab_core.db import RowLoader, any_of, as_list_param, fetch_all, json_rows
from gitlab_core.models import User
from projects.models import (
    AccessLevel,
    ContainerRepositoryProtectionRule,
    DeployToken,
    GroupMember,
    Namespace,
    Project,
    ProjectMember,
    RegistryAccessLevel,
    Visibility,
)

Actor = User | DeployToken | None

# "Not computed yet": an access level passed in as None means "no membership".
_UNKNOWN = object()

# Project abilities.
READ_PROJECT = "read_project"
READ_STATISTICS = "read_statistics"
READ_CONTAINER_IMAGE = "read_container_image"
CREATE_CONTAINER_IMAGE = "create_container_image"
DESTROY_CONTAINER_IMAGE = "destroy_container_image"
ADMIN_CONTAINER_IMAGE = "admin_container_image"
UPDATE_PROJECT = "update_project"
CHANGE_NAMESPACE_ATTRIBUTES = "change_visibility_level"  # rename, re-path, visibility
REMOVE_PROJECT = "remove_project"
READ_MEMBERS = "read_project_member"
ADMIN_PROJECT_MEMBER = "admin_project_member"
ADMIN_DEPLOY_TOKENS = "admin_deploy_token"
READ_PROJECT_AUDIT_EVENTS = "read_project_audit_events"
# Grant, change or remove the Owner role of a project member (Owners only).
MANAGE_PROJECT_OWNERS = "manage_owners"
# Group abilities.
READ_GROUP = "read_group"
READ_GROUP_CONTAINER_IMAGES = "read_group_container_image"
CREATE_SUBGROUP = "create_subgroup"
CREATE_PROJECTS = "create_projects"
ADMIN_GROUP_MEMBER = "admin_group_member"
# Group settings and hooks (Owner).
ADMIN_GROUP = "admin_group"
READ_GROUP_MEMBERS = "read_group_member"
READ_GROUP_AUDIT_EVENTS = "read_group_audit_events"
# List, create and revoke a group's deploy tokens (Owners, as in GitLab).
ADMIN_GROUP_DEPLOY_TOKENS = "admin_group_deploy_token"

_ALL_PROJECT = frozenset(
    {
        READ_PROJECT,
        READ_STATISTICS,
        READ_CONTAINER_IMAGE,
        CREATE_CONTAINER_IMAGE,
        DESTROY_CONTAINER_IMAGE,
        ADMIN_CONTAINER_IMAGE,
        UPDATE_PROJECT,
        CHANGE_NAMESPACE_ATTRIBUTES,
        REMOVE_PROJECT,
        READ_MEMBERS,
        ADMIN_PROJECT_MEMBER,
        ADMIN_DEPLOY_TOKENS,
        MANAGE_PROJECT_OWNERS,
        READ_PROJECT_AUDIT_EVENTS,
    }
)
_ALL_GROUP = frozenset(
    {
        READ_GROUP,
        READ_GROUP_CONTAINER_IMAGES,
        CREATE_SUBGROUP,
        CREATE_PROJECTS,
        ADMIN_GROUP_MEMBER,
        ADMIN_GROUP,
        READ_GROUP_MEMBERS,
        READ_GROUP_AUDIT_EVENTS,
        ADMIN_GROUP_DEPLOY_TOKENS,
    }
)
_REGISTRY_ABILITIES = frozenset(
    {READ_CONTAINER_IMAGE, CREATE_CONTAINER_IMAGE, DESTROY_CONTAINER_IMAGE, ADMIN_CONTAINER_IMAGE}
)
_REGISTRY_WRITE = {CREATE_CONTAINER_IMAGE: 30, DESTROY_CONTAINER_IMAGE: 30, ADMIN_CONTAINER_IMAGE: 40}


def _can_see(user: User | None, visibility: int, level: int | None) -> bool:
    if visibility == Visibility.PUBLIC:
        return True
    if user is None:
        return False
    if level is not None:
        return True
    return visibility == Visibility.INTERNAL and not user.external


def project_abilities(
    actor: Actor,
    project: Project,
    *,
    access_level: int | None | object = _UNKNOWN,
    deploy_token_access: bool | object = _UNKNOWN,
) -> frozenset[str]:
    """Everything ``actor`` may do on ``project``.

    ``access_level`` (a user's effective level) and ``deploy_token_access`` (whether a
    deploy token reaches the project): when the caller already has them from
    ``projects_with_access_level``, which saves a query.
    """
    if project.pending_delete:
        return frozenset()
    if isinstance(actor, DeployToken):
        return deploy_token_abilities(actor, project, has_access=deploy_token_access)
    user = actor
    if user is not None and not user.can_log_in:
        return frozenset()
    registry_on = project.container_registry_access_level != RegistryAccessLevel.DISABLED
    if user is not None and user.is_admin:
        return _ALL_PROJECT if registry_on else _ALL_PROJECT - _REGISTRY_ABILITIES
    level = project_access_level(user, project) if access_level is _UNKNOWN else access_level
    if not _can_see(user, project.visibility, level):
        return frozenset()
    abilities = {READ_PROJECT, READ_MEMBERS}
    if registry_on:
        registry_private = project.container_registry_access_level == RegistryAccessLevel.PRIVATE
        if (level or 0) >= AccessLevel.REPORTER or (not registry_private and project.visibility != Visibility.PRIVATE):
            abilities.add(READ_CONTAINER_IMAGE)
        for ability, minimum in _REGISTRY_WRITE.items():
            if (level or 0) >= minimum:
                abilities.add(ability)
    if (level or 0) >= AccessLevel.REPORTER:
        abilities.add(READ_STATISTICS)
    if (level or 0) >= AccessLevel.MAINTAINER:
        abilities |= {UPDATE_PROJECT, ADMIN_PROJECT_MEMBER, ADMIN_DEPLOY_TOKENS, READ_PROJECT_AUDIT_EVENTS}
    if (level or 0) >= AccessLevel.OWNER:
        abilities |= {CHANGE_NAMESPACE_ATTRIBUTES, REMOVE_PROJECT, MANAGE_PROJECT_OWNERS}
    return frozenset(abilities)


def deploy_token_abilities(
    token: DeployToken, project: Project, *, has_access: bool | object = _UNKNOWN
) -> frozenset[str]:
    """What ``token`` may do with ``project``'s images: through its scopes on a project
    it reaches (a project token its own project, a group token every project of the
    group and its subgroups: ``projects_with_access_level``), and everywhere at least
    what an anonymous caller may (pull a public project's images).

    ``has_access``: whether the token reaches the project, when already known.
    """
    if not token.active or project.pending_delete:
        return frozenset()
    if project.container_registry_access_level == RegistryAccessLevel.DISABLED:
        return frozenset()
    # Any authenticated caller gets at least what an anonymous one gets.
    abilities = set(project_abilities(None, project) & _REGISTRY_ABILITIES)
    if has_access is _UNKNOWN:
        found = projects_with_access_level(user=None, deploy_token=token, paths=[project.full_path_lower])
        has_access = project.full_path_lower in found and found[project.full_path_lower].deploy_token_access
    if not has_access:
        return frozenset(abilities)
    if "read_registry" in token.scopes:
        abilities.add(READ_CONTAINER_IMAGE)
    if "write_registry" in token.scopes:
        abilities.add(CREATE_CONTAINER_IMAGE)
    return frozenset(abilities)


def can(actor: Actor, ability: str, subject: Project | Namespace) -> bool:
    if isinstance(subject, Project):
        return ability in project_abilities(actor, subject)
    return ability in group_abilities(actor, subject)


def group_abilities(actor: Actor, group: Namespace) -> frozenset[str]:
    if isinstance(actor, DeployToken) or not group.is_group:
        return frozenset()
    user = actor
    if user is not None and not user.can_log_in:
        return frozenset()
    if user is not None and user.is_admin:
        return _ALL_GROUP
    level = group_access_level(user, group)
    visible = _can_see(user, group.visibility, level) or _member_below(user, group)
    if not visible:
        return frozenset()
    abilities = {READ_GROUP, READ_GROUP_MEMBERS}
    if (level or 0) >= AccessLevel.REPORTER:
        abilities.add(READ_GROUP_CONTAINER_IMAGES)
    if (level or 0) >= AccessLevel.DEVELOPER:
        abilities.add(CREATE_PROJECTS)
    if (level or 0) >= AccessLevel.MAINTAINER:
        abilities.add(CREATE_SUBGROUP)
    if (level or 0) >= AccessLevel.OWNER:
        abilities |= {ADMIN_GROUP_MEMBER, ADMIN_GROUP, READ_GROUP_AUDIT_EVENTS, ADMIN_GROUP_DEPLOY_TOKENS}
    return frozenset(abilities)


def _member_below(user: User | None, group: Namespace) -> bool:
    """GitLab shows a private group to members of any of its subgroups or projects."""
    if user is None:
        return False
    ids = group.self_and_descendant_ids()
    return (
        GroupMember.objects.active().filter(user=user, group_id__any=ids).exists()
        or ProjectMember.objects.active().filter(user=user, project__namespace_id__any=ids).exists()
    )


def can_create_project_in(user: User | None, namespace: Namespace) -> bool:
    if user is None or not user.can_log_in:
        return False
    if user.is_admin:
        return True
    if namespace.is_group:
        return CREATE_PROJECTS in group_abilities(user, namespace)
    return namespace.owner_id == user.pk


def can_create_group(user: User | None, parent: Namespace | None) -> bool:
    if user is None or not user.can_log_in:
        return False
    if user.is_admin:
        return True
    if parent is None:
        return user.can_create_group
    return CREATE_SUBGROUP in group_abilities(user, parent)


# --- Selectors: what an actor can see ---------------------------------------------------


def member_group_ids(user: User, minimum: int = AccessLevel.GUEST) -> set[int]:
    """Groups where ``user`` has an active membership of at least ``minimum``, with all
    their descendants (where that membership is inherited)."""
    direct = GroupMember.objects.active().filter(user=user, access_level__gte=minimum)
    result = set(direct.values_list("group_id", flat=True))
    frontier = set(result)
    while frontier:
        frontier = set(Namespace.objects.filter(parent_id__any=frontier).values_list("pk", flat=True)) - result
        result |= frontier
    return result


def group_registry_projects(actor: Actor, group: Namespace) -> QuerySet[Project]:
    """The projects of ``group`` and its subgroups whose images ``actor`` may read, as one
    query (no check per project, so a group of any size costs the same).

    The actor must have ``READ_GROUP_CONTAINER_IMAGES`` on the group (else: none). That
    is an admin or an effective Reporter+ there, and memberships are inherited, so the
    actor is Reporter+ on every project below: ``READ_CONTAINER_IMAGE`` then only needs
    the project's registry to be on (``project_abilities``)."""
    if READ_GROUP_CONTAINER_IMAGES not in group_abilities(actor, group):
        return Project.objects.none()
    return Project.objects.filter(namespace_id__any=group.self_and_descendant_ids(), pending_delete=False).exclude(
        container_registry_access_level=RegistryAccessLevel.DISABLED
    )


def visible_projects(user: User | None) -> QuerySet[Project]:
    qs = Project.objects.filter(pending_delete=False)
    if user is not None and user.is_admin:
        return qs
    if user is None or not user.can_log_in:
        return qs.filter(visibility=Visibility.PUBLIC)
    condition = Q(visibility=Visibility.PUBLIC) | Q(namespace__owner=user)
    if not user.external:
        condition |= Q(visibility=Visibility.INTERNAL)
    member_projects = ProjectMember.objects.active().filter(user=user).values("project_id")
    condition |= Q(pk__in=member_projects) | Q(namespace_id__any=member_group_ids(user))
    return qs.filter(condition)


def visible_groups(user: User | None) -> QuerySet[Namespace]:
    qs = Namespace.objects.filter(kind=Namespace.Kind.GROUP)
    if user is not None and user.is_admin:
        return qs
    if user is None or not user.can_log_in:
        return qs.filter(visibility=Visibility.PUBLIC)
    condition = Q(visibility=Visibility.PUBLIC)
    if not user.external:
        condition |= Q(visibility=Visibility.INTERNAL)
    ids = member_group_ids(user)
    # Ancestors of groups and projects the user belongs to are visible too.
    project_ns = set(ProjectMember.objects.active().filter(user=user).values_list("project__namespace_id", flat=True))
    for ns in Namespace.objects.filter(pk__any=ids | project_ns):
        ids.update(ns.self_and_ancestor_ids())
    condition |= Q(pk__any=ids)
    return qs.filter(condition)


# --- CI jobs ------------------------------------------------------------------------------
BUILD_READ_CONTAINER_IMAGE = "build_read_container_image"
BUILD_CREATE_CONTAINER_IMAGE = "build_create_container_image"
BUILD_DESTROY_CONTAINER_IMAGE = "build_destroy_container_image"


def ci_job_abilities(job, project: Project, *, access_level: int | None | object = _UNKNOWN) -> frozenset[str]:
    """What a running CI job (``projects.models.CiJob``) may do with ``project``'s images.

    GitLab's build abilities: a job pulls, pushes and deletes in its own project; in
    another project it only pulls, and only when its user is a member there (Guest+, an
    admin who is not a member gets nothing) who may read the project's images, or the
    project's registry is public. ``access_level``: the job user's effective level when
    already known.
    """
    if project.pending_delete or project.container_registry_access_level == RegistryAccessLevel.DISABLED:
        return frozenset()
    if job.project_id == project.pk:
        return frozenset({BUILD_READ_CONTAINER_IMAGE, BUILD_CREATE_CONTAINER_IMAGE, BUILD_DESTROY_CONTAINER_IMAGE})
    user = job.user
    if user is None or not user.can_log_in:
        return frozenset()
    level = project_access_level(user, project) if access_level is _UNKNOWN else access_level
    public_registry = (
        project.visibility == Visibility.PUBLIC
        and project.container_registry_access_level == RegistryAccessLevel.ENABLED
    )
    member_reader = (level or 0) >= AccessLevel.GUEST and READ_CONTAINER_IMAGE in project_abilities(
        user, project, access_level=level
    )
    if member_reader or public_registry:
        return frozenset({BUILD_READ_CONTAINER_IMAGE})
    return frozenset()


# --- Effective access levels: one statement for the realm, the API and the admin --------


@dataclass(frozen=True)
class ProjectAccess:
    """A project found by path, the user's effective access level on it (None: no
    membership), the id of its root namespace, and whether the deploy token asked about
    reaches it."""

    project: Project
    access_level: int | None
    root_namespace_id: int | None
    deploy_token_access: bool = False
    # Whether the project has container repository protection rules (``projects.protection``
    # reads them only then).
    has_protection_rules: bool = False


# Fields the callers read; the others stay deferred (loaded if ever touched).
_PROJECT_FIELDS = frozenset(
    {
        "id",
        "namespace_id",
        "visibility",
        "container_registry_access_level",
        "full_path",
        "full_path_lower",
        "pending_delete",
    }
)


def _inherited_level_sql(path: str, user_id: str = "%s") -> str:
    """The highest active membership of a user in a group that is ``path``'s namespace or
    one of its ancestors. Parameters: those of ``user_id`` (SQL for the user's id), today,
    the group kind. A group is such an ancestor exactly when "<group path>/" starts
    ``path``: full paths are stored denormalised, so no walk up the parent chain is
    needed. substr() and not LIKE: "_" is a LIKE wildcard and is allowed in paths."""
    active = GroupMember.ACTIVE_SQL.format(m="gm")
    return (
        f"(SELECT MAX(gm.access_level) FROM {GroupMember._meta.db_table} gm "
        f"JOIN {Namespace._meta.db_table} g ON g.id = gm.group_id "
        f"WHERE gm.user_id = {user_id} AND {active} AND g.kind = %s "
        f"AND substr({path}, 1, length(g.full_path_lower) + 1) = g.full_path_lower || '/')"
    )


@functools.cache
def _project_loader() -> RowLoader:
    return RowLoader(Project, _PROJECT_FIELDS, "p")


@functools.lru_cache(maxsize=8)
def _project_statement(vendor: str, *, user_id: str | None) -> tuple[RowLoader, str]:
    """Row loader and SQL of ``candidates_statement`` on this database (a fixed text: the
    candidates are one JSON parameter, their paths one array). The projects, their root
    namespaces, a deploy token's reach and their protection rules are found the same way
    with or without a user; ``user_id`` (SQL for the user's id: ``%s``, or a subquery
    that finds it) adds the user's three levels (direct, inherited, personal owner),
    which no caller without a user needs. The callers' ``user_id`` texts are fixed, so
    this keeps a few statements."""
    loader = _project_loader()
    namespaces = Namespace._meta.db_table
    levels = (
        f"""
 (SELECT MAX(pm.access_level) FROM {ProjectMember._meta.db_table} pm
   WHERE pm.project_id = p.id AND pm.user_id = {user_id} AND {ProjectMember.ACTIVE_SQL.format(m="pm")}),
 {_inherited_level_sql("p.full_path_lower", user_id)},
 CASE WHEN n.kind = %s AND n.owner_id = {user_id} THEN %s ELSE NULL END,"""
        if user_id is not None
        else ""
    )
    # GitLab's image path rule, the one statement of it (a lazy import: image_paths
    # builds on this module).
    from projects.image_paths import LEVELS_SUPPORTED, longest_project_sql

    # One row per (key, candidate path, all the key's candidates): each row reads its
    # key's candidates from itself, so the work grows with the keys, not their square.
    # The candidate paths again as an array: PostgreSQL finds the projects by their
    # index from it (a generic plan cannot see how few rows the JSON holds, and chose to
    # hash the whole table).
    longest = longest_project_sql([f"c.c ->> {index}" for index in range(LEVELS_SUPPORTED)])
    sql = f"""WITH candidates AS ({json_rows(vendor)})
SELECT c.a, {loader.columns},{levels}
 (SELECT r.id FROM {namespaces} r
   WHERE r.parent_id IS NULL AND r.full_path_lower = c.d),
 (SELECT d.id FROM {DeployToken._meta.db_table} d LEFT JOIN {namespaces} dg ON dg.id = d.group_id
   WHERE d.id = %s AND (d.project_id = p.id
     OR substr(p.full_path_lower, 1, length(dg.full_path_lower) + 1) = dg.full_path_lower || '/')),
 EXISTS (SELECT 1 FROM {ContainerRepositoryProtectionRule._meta.db_table} pr WHERE pr.project_id = p.id)
FROM {Project._meta.db_table} p
JOIN candidates c ON c.b = p.full_path_lower
JOIN {namespaces} n ON n.id = p.namespace_id
WHERE {any_of("p.full_path_lower", vendor)} AND p.id = {longest}"""
    return loader, sql


def projects_with_access_level(
    *, user: User | None, paths: Iterable[str], deploy_token: DeployToken | None = None
) -> dict[str, ProjectAccess]:
    """Projects (pending deletion too: callers refuse them) whose lower-cased full path is in ``paths``, keyed
    by that path, each with ``user``'s effective access level, its root namespace id and
    whether ``deploy_token`` reaches it: one query for all of them. The effective level
    is the highest of the user's active direct membership, active memberships of the
    project's group and its ancestors, and Owner for the owner of a personal namespace;
    without a user it is None (the statement then reads no membership at all). A deploy
    token reaches its own project, or (a group token) every project whose full path lies
    below its group's.

    Pass the level on to ``project_abilities(..., access_level=...)`` or
    ``ci_job_abilities``, the reach to ``deploy_token_abilities(..., has_access=...)``.
    """
    return projects_for_candidates(user=user, candidates={path: [path] for path in paths}, deploy_token=deploy_token)


def projects_for_candidates(
    *, user: User | None, candidates: Mapping[str, Sequence[str]], deploy_token: DeployToken | None = None
) -> dict[str, ProjectAccess]:
    """``projects_with_access_level`` for keys that each name several candidate project
    paths (lower-cased): each key's project is the longest of its candidates that is a
    project's path (``image_paths.longest_project_sql``); keys without one are left out.
    One query for all keys, with a text that does not depend on how many there are."""
    user_id = None if user is None else ("%s", [user.pk])
    statement = candidates_statement(candidates=candidates, user_id=user_id, deploy_token=deploy_token)
    if statement is None:
        return {}
    sql, params, _width = statement
    return candidates_found(fetch_all(sql, params), with_user=user is not None)


def candidates_statement(
    *,
    candidates: Mapping[str, Sequence[str]],
    user_id: tuple[str, Sequence] | None,
    deploy_token: DeployToken | None = None,
) -> tuple[str, list, int] | None:
    """``projects_for_candidates``'s statement as (text, parameters, number of columns),
    for a caller that reads it beside another lookup (``gitlab_core.db.
    fetch_side_by_side``); None without candidates. ``user_id`` is SQL for the id of the
    user whose access levels are read, and its parameters: ``("%s", [user.pk])``, or a
    subquery that finds the user in the same statement (the token realm's
    ``token_lookup.owner_id_sql``). ``candidates_found`` reads its rows."""
    from projects.image_paths import LEVELS_SUPPORTED  # image_paths builds on this module

    if any(len(paths) > LEVELS_SUPPORTED for paths in candidates.values()):
        raise ValueError(f"at most {LEVELS_SUPPORTED} candidate paths a key")
    # (key, candidate path, the key's candidates longest first, as the rule reads them,
    # the candidate's root namespace path)
    entries = []
    for key, paths in sorted(candidates.items()):
        longest_first = sorted(dict.fromkeys(paths), key=len, reverse=True)
        entries += [[key, path, longest_first, path.split("/", 1)[0]] for path in longest_first]
    if not entries:
        return None
    vendor = connection.vendor
    loader, sql = _project_statement(vendor, user_id=None if user_id is None else user_id[0])
    params = [deploy_token.pk if deploy_token is not None else None]
    if user_id is not None:
        who = list(user_id[1])
        today = timezone.now().date()
        group, personal = Namespace.Kind.GROUP.value, Namespace.Kind.USER.value
        params[:0] = [*who, today, *who, today, group, personal, *who, AccessLevel.OWNER.value]
    params.insert(0, json.dumps(entries))
    params.append(as_list_param(sorted({entry[1] for entry in entries}), vendor))
    # The key, the project, the levels (with a user), root namespace, reach, protection.
    return sql, params, 1 + len(loader) + (_LEVELS if user_id is not None else 0) + 3


# The user's levels that the statement reads: direct, inherited, personal namespace owner.
_LEVELS = 3


def candidates_found(rows: Iterable[Sequence], *, with_user: bool) -> dict[str, ProjectAccess]:
    """The projects found by ``candidates_statement``'s rows, keyed as the candidates
    were; ``with_user``: the statement was given a ``user_id``."""
    loader = _project_loader()
    width = len(loader)
    level_count = _LEVELS if with_user else 0
    result = {}
    for key, *row in rows:
        project = loader.load(row[:width])
        levels = [level for level in row[width : width + level_count] if level is not None]
        # After the levels (when read): root namespace, deploy token reach, protection rules.
        root_namespace_id, reached, protected = row[width + level_count : width + level_count + 3]
        result[key] = ProjectAccess(
            project=project,
            access_level=max(levels) if levels else None,
            root_namespace_id=root_namespace_id,
            deploy_token_access=reached is not None,
            has_protection_rules=bool(protected),
        )
    return result


def project_access_level(user: User | None, project: Project) -> int | None:
    """``user``'s effective access level on ``project`` (None: none), as
    ``projects_with_access_level`` computes it."""
    if user is None:
        return None
    found = projects_with_access_level(user=user, paths=[project.full_path_lower]).get(project.full_path_lower)
    return found.access_level if found is not None else None


def group_access_level(user: User | None, namespace: Namespace) -> int | None:
    """Effective access on a group: the highest active membership in the group or one of
    its ancestors (the same rule as a project's inherited level)."""
    if user is None or not namespace.is_group:
        return None
    sql = f"SELECT {_inherited_level_sql('%s')}"
    params = [user.pk, timezone.now().date(), Namespace.Kind.GROUP.value, namespace.full_path_lower + "/"]
    return fetch_all(sql, params)[0][0]
