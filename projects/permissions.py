"""The one place that answers "what may this actor do here".

An actor is a ``User`` (possibly an instance admin), ``None`` for an anonymous caller,
or a ``DeployToken``. The REST API, the token realm and the admin pages ask these
functions; nothing else checks membership inline.

Abilities follow GitLab's ProjectPolicy/GroupPolicy for the parts this service needs
(``api-contract.md`` §1.5-1.6, ``gitlab-reference.md`` §2.7).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Max, Q, QuerySet
from django.utils import timezone

from gitlab_core.hot_queries import RowLoader, fetch_all
from gitlab_core.models import User
from projects.models import (
    AccessLevel,
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
# Grant, change or remove the Owner role of a project member (Owners only).
MANAGE_PROJECT_OWNERS = "manage_owners"
# Group abilities.
READ_GROUP = "read_group"
READ_GROUP_CONTAINER_IMAGES = "read_group_container_image"
CREATE_SUBGROUP = "create_subgroup"
CREATE_PROJECTS = "create_projects"
ADMIN_GROUP_MEMBER = "admin_group_member"
READ_GROUP_MEMBERS = "read_group_member"

_ALL_PROJECT = frozenset(
    {
        READ_PROJECT,
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
    }
)
_ALL_GROUP = frozenset(
    {READ_GROUP, READ_GROUP_CONTAINER_IMAGES, CREATE_SUBGROUP, CREATE_PROJECTS, ADMIN_GROUP_MEMBER, READ_GROUP_MEMBERS}
)
_REGISTRY_ABILITIES = frozenset(
    {READ_CONTAINER_IMAGE, CREATE_CONTAINER_IMAGE, DESTROY_CONTAINER_IMAGE, ADMIN_CONTAINER_IMAGE}
)
_REGISTRY_WRITE = {CREATE_CONTAINER_IMAGE: 30, DESTROY_CONTAINER_IMAGE: 30, ADMIN_CONTAINER_IMAGE: 40}


def _active_members(qs: QuerySet) -> QuerySet:
    today = timezone.now().date()
    return qs.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=today))


def group_access_level(user: User | None, namespace: Namespace) -> int | None:
    """Effective access on a group: the maximum over the group and its ancestors."""
    if user is None or not namespace.is_group:
        return None
    ids = namespace.self_and_ancestor_ids()
    level = _active_members(GroupMember.objects.filter(user=user, group_id__in=ids)).aggregate(m=Max("access_level"))
    return level["m"]


def project_access_level(user: User | None, project: Project) -> int | None:
    """Effective access on a project: max(direct membership, inherited group membership).

    The owner of a personal namespace is the Owner of its projects.
    """
    if user is None:
        return None
    levels = []
    direct = _active_members(ProjectMember.objects.filter(user=user, project=project)).aggregate(m=Max("access_level"))[
        "m"
    ]
    if direct is not None:
        levels.append(direct)
    namespace = project.namespace
    if namespace.is_group:
        inherited = group_access_level(user, namespace)
        if inherited is not None:
            levels.append(inherited)
    elif namespace.owner_id == user.pk:
        levels.append(AccessLevel.OWNER)
    return max(levels) if levels else None


def _can_see(user: User | None, visibility: int, level: int | None) -> bool:
    if visibility == Visibility.PUBLIC:
        return True
    if user is None:
        return False
    if level is not None:
        return True
    return visibility == Visibility.INTERNAL and not user.external


def project_abilities(
    actor: Actor, project: Project, *, access_level: int | None | object = _UNKNOWN
) -> frozenset[str]:
    """Everything ``actor`` may do on ``project``.

    ``access_level``: the user's effective level when the caller already has it (from
    ``registry_projects``), which saves the membership queries.
    """
    if project.pending_delete:
        return frozenset()
    if isinstance(actor, DeployToken):
        return deploy_token_abilities(actor, project)
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
    if (level or 0) >= AccessLevel.MAINTAINER:
        abilities |= {UPDATE_PROJECT, ADMIN_PROJECT_MEMBER, ADMIN_DEPLOY_TOKENS}
    if (level or 0) >= AccessLevel.OWNER:
        abilities |= {CHANGE_NAMESPACE_ATTRIBUTES, REMOVE_PROJECT, MANAGE_PROJECT_OWNERS}
    return frozenset(abilities)


def deploy_token_abilities(token: DeployToken, project: Project) -> frozenset[str]:
    """A project deploy token acts on its own project only, through its scopes."""
    if not token.active or token.project_id != project.pk or project.pending_delete:
        return frozenset()
    if project.container_registry_access_level == RegistryAccessLevel.DISABLED:
        return frozenset()
    abilities = set()
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
        abilities.add(ADMIN_GROUP_MEMBER)
    return frozenset(abilities)


def _member_below(user: User | None, group: Namespace) -> bool:
    """GitLab shows a private group to members of any of its subgroups or projects."""
    if user is None:
        return False
    ids = group.self_and_descendant_ids()
    return (
        _active_members(GroupMember.objects.filter(user=user, group_id__in=ids)).exists()
        or _active_members(ProjectMember.objects.filter(user=user, project__namespace_id__in=ids)).exists()
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


def _member_namespace_ids(user: User) -> set[int]:
    """Groups the user is a member of, with all their descendants."""
    direct = set(_active_members(GroupMember.objects.filter(user=user)).values_list("group_id", flat=True))
    result = set(direct)
    frontier = set(direct)
    while frontier:
        frontier = set(Namespace.objects.filter(parent_id__in=frontier).values_list("pk", flat=True)) - result
        result |= frontier
    return result


def visible_projects(user: User | None) -> QuerySet[Project]:
    qs = Project.objects.filter(pending_delete=False)
    if user is not None and user.is_admin:
        return qs
    if user is None or not user.can_log_in:
        return qs.filter(visibility=Visibility.PUBLIC)
    condition = Q(visibility=Visibility.PUBLIC) | Q(namespace__owner=user)
    if not user.external:
        condition |= Q(visibility=Visibility.INTERNAL)
    member_projects = _active_members(ProjectMember.objects.filter(user=user)).values("project_id")
    condition |= Q(pk__in=member_projects) | Q(namespace_id__in=_member_namespace_ids(user))
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
    ids = _member_namespace_ids(user)
    # Ancestors of groups and projects the user belongs to are visible too.
    project_ns = set(
        _active_members(ProjectMember.objects.filter(user=user)).values_list("project__namespace_id", flat=True)
    )
    for ns in Namespace.objects.filter(pk__in=ids | project_ns):
        ids.update(ns.self_and_ancestor_ids())
    condition |= Q(pk__in=ids)
    return qs.filter(condition)


# --- CI jobs ------------------------------------------------------------------------------
BUILD_READ_CONTAINER_IMAGE = "build_read_container_image"
BUILD_CREATE_CONTAINER_IMAGE = "build_create_container_image"
BUILD_DESTROY_CONTAINER_IMAGE = "build_destroy_container_image"


def ci_job_abilities(job, project: Project, *, access_level: int | None | object = _UNKNOWN) -> frozenset[str]:
    """What a running CI job (``projects.models.CiJob``) may do with ``project``'s images.

    GitLab's build abilities: a job pulls, pushes and deletes in its own project; in
    another project it only pulls, and only when its user is a member there (Guest+, an
    admin who is not a member gets nothing) or the project's registry is public.
    ``access_level``: the job user's effective level when already known.
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
    if (level or 0) >= AccessLevel.GUEST or public_registry:
        return frozenset({BUILD_READ_CONTAINER_IMAGE})
    return frozenset()


# --- The token realm's hot path: projects by path with the caller's level, one query ----


@dataclass(frozen=True)
class ProjectAccess:
    """A project found by path, the user's effective access level on it (None: no
    membership) and the id of its root namespace."""

    project: Project
    access_level: int | None
    root_namespace_id: int | None


_HOT_PROJECT_FIELDS = frozenset(
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
_hot_query: tuple[RowLoader, str] | None = None


def _hot_sql() -> tuple[RowLoader, str]:
    """Row loader and SQL template of ``projects_with_access_level``, built once."""
    global _hot_query
    if _hot_query is None:
        loader = RowLoader(Project, _HOT_PROJECT_FIELDS, "p")
        projects, namespaces = Project._meta.db_table, Namespace._meta.db_table
        # A group is an ancestor of the project's namespace (or that namespace itself)
        # exactly when "<group path>/" starts the project's path: full paths are stored
        # denormalised, so no walk up the parent chain is needed. substr() and not LIKE:
        # "_" is a LIKE wildcard and is allowed in paths.
        template = f"""
SELECT {loader.columns},
 (SELECT MAX(pm.access_level) FROM {ProjectMember._meta.db_table} pm
   WHERE pm.project_id = p.id AND pm.user_id = %s AND (pm.expires_at IS NULL OR pm.expires_at > %s)),
 (SELECT MAX(gm.access_level) FROM {GroupMember._meta.db_table} gm JOIN {namespaces} g ON g.id = gm.group_id
   WHERE gm.user_id = %s AND (gm.expires_at IS NULL OR gm.expires_at > %s) AND g.kind = %s
     AND substr(p.full_path_lower, 1, length(g.full_path_lower) + 1) = g.full_path_lower || '/'),
 CASE WHEN n.kind = %s AND n.owner_id = %s THEN %s ELSE NULL END,
 (SELECT r.id FROM {namespaces} r
   WHERE r.parent_id IS NULL AND r.full_path_lower IN ({{roots}})
     AND substr(p.full_path_lower, 1, length(r.full_path_lower) + 1) = r.full_path_lower || '/')
FROM {projects} p JOIN {namespaces} n ON n.id = p.namespace_id
WHERE p.full_path_lower IN ({{paths}}) AND p.pending_delete = %s"""
        _hot_query = (loader, template)
    return _hot_query


def projects_with_access_level(*, user: User | None, paths: list[str]) -> dict[str, ProjectAccess]:
    """Projects (not pending deletion) whose lower-cased full path is in ``paths``, keyed
    by that path, each with ``user``'s effective access level (as ``project_access_level``
    computes it) and its root namespace id: one query for all of them. Only the fields
    the realm reads are loaded; the others stay deferred.

    Pass the level on to ``project_abilities(..., access_level=...)`` or
    ``ci_job_abilities``.
    """
    if not paths:
        return {}
    loader, template = _hot_sql()
    roots = sorted({path.split("/", 1)[0] for path in paths})
    sql = template.format(roots=", ".join(["%s"] * len(roots)), paths=", ".join(["%s"] * len(paths)))
    user_id = user.pk if user is not None else None
    today = timezone.now().date()
    params = [
        user_id,
        today,
        user_id,
        today,
        Namespace.Kind.GROUP.value,
        Namespace.Kind.USER.value,
        user_id,
        AccessLevel.OWNER.value,
        *roots,
        *paths,
        False,
    ]
    width = len(loader)
    result = {}
    for row in fetch_all(sql, params):
        project = loader.load(row[:width])
        levels = [level for level in row[width : width + 3] if level is not None]
        result[project.full_path_lower] = ProjectAccess(
            project=project, access_level=max(levels) if levels else None, root_namespace_id=row[width + 3]
        )
    return result
