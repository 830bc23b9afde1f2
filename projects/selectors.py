"""Reads of groups, projects, members and deploy tokens, scoped to what the actor may see.

Lookups answer 404 for anything the actor cannot see (existence is never leaked); the
visibility rules themselves live in ``projects.permissions``.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Sequence

from django.db.models import Q, QuerySet

from gitlab_core import tokens
from gitlab_core.db import RowLoader, fetch_all
from gitlab_core.errors import not_found
from gitlab_core.models import User
from gitlab_core.text import clean_text, parse_int_id
from projects import permissions
from projects.models import AccessLevel, CiJob, DeployToken, GroupMember, Namespace, Project, ProjectMember, Visibility

PROJECT_ORDER_FIELDS = ("id", "name", "path", "created_at", "last_activity_at")
GROUP_ORDER_FIELDS = ("name", "path", "id")


def lookup_by_id_or_path(qs: QuerySet, raw_id: str):
    """The row of ``qs`` (projects or namespaces) that an API ``:id`` names: a numeric
    id (ASCII digits only: ``²`` is a path, not a number) or a full path, matched
    case-insensitively. None when there is none."""
    if not clean_text(raw_id):
        return None
    if raw_id.isascii() and raw_id.isdigit():
        pk = parse_int_id(raw_id)
        return qs.filter(pk=pk).first() if pk else None
    return qs.filter(full_path_lower=raw_id.lower()).first()


def find_project(actor: User | None, raw_id: str) -> Project:
    """The project ``raw_id`` names if ``actor`` may see it; else 404 Project Not Found."""
    qs = Project.objects.select_related("namespace", "namespace__parent", "creator").filter(pending_delete=False)
    project = lookup_by_id_or_path(qs, raw_id)
    if project is None or not permissions.can(actor, permissions.READ_PROJECT, project):
        raise not_found("Project")
    return project


def find_group(actor: User | None, raw_id: str) -> Namespace:
    """The group ``raw_id`` names if ``actor`` may see it; else 404 Group Not Found."""
    group = lookup_by_id_or_path(Namespace.objects.filter(kind=Namespace.Kind.GROUP), raw_id)
    if group is None or not permissions.can(actor, permissions.READ_GROUP, group):
        raise not_found("Group")
    return group


def namespaces_of(user: User, *, owned_only: bool = False) -> Q:
    """A condition for the namespaces that are ``user``'s: the personal namespace and the
    groups where the user is an effective member (Owner with ``owned_only``)."""
    groups = permissions.member_group_ids(user, AccessLevel.OWNER if owned_only else AccessLevel.GUEST)
    return Q(owner=user) | Q(pk__any=groups)


def list_namespaces(
    *, viewer: User, search: str | None = None, owned_only: bool = False, top_level_only: bool = False
) -> QuerySet[Namespace]:
    """The namespaces of ``viewer`` (administrators: every namespace), by id."""
    qs = Namespace.objects.select_related("parent")
    if not viewer.is_admin:
        qs = qs.filter(namespaces_of(viewer, owned_only=owned_only))
    elif owned_only:
        qs = qs.filter(namespaces_of(viewer, owned_only=True))
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(path__icontains=search))
    if top_level_only:
        qs = qs.filter(parent__isnull=True)
    return qs.order_by("id")


def find_namespace(actor: User, raw_id: str) -> Namespace:
    """The namespace ``raw_id`` names (id or full path) if it is ``actor``'s (a personal
    namespace: its owner; a group: one ``actor`` may see); else 404 Namespace Not Found."""
    namespace = lookup_by_id_or_path(Namespace.objects.select_related("parent"), raw_id)
    if namespace is None:
        raise not_found("Namespace")
    if namespace.is_group:
        visible = permissions.can(actor, permissions.READ_GROUP, namespace)
    else:
        visible = actor.is_admin or namespace.owner_id == actor.pk
    if not visible:
        raise not_found("Namespace")
    return namespace


def projects_with_access(user: User, minimum: int) -> Q:
    """A condition for projects where ``user``'s effective access is at least ``minimum``."""
    direct = ProjectMember.objects.active().filter(user=user, access_level__gte=minimum).values("project_id")
    groups = permissions.member_group_ids(user, minimum)
    return Q(pk__in=direct) | Q(namespace_id__any=groups) | Q(namespace__owner=user)


def list_projects(
    *,
    viewer: User | None,
    namespace_ids: list[int] | None = None,
    search: str | None = None,
    visibility: str | None = None,
    membership: bool | None = None,
    owned: bool | None = None,
    min_access_level: int | None = None,
    order_by: str | None = None,
    sort: str | None = None,
) -> QuerySet[Project]:
    """Projects visible to ``viewer`` with GitLab's ``GET /projects`` filters
    (``namespace_ids``: only those of these namespaces, for a group's projects).

    Default order: ``created_at`` descending (GitLab's default), ties broken by id.
    """
    qs = permissions.visible_projects(viewer).select_related("namespace", "namespace__parent", "creator")
    if namespace_ids is not None:
        qs = qs.filter(namespace_id__any=namespace_ids)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(path__icontains=search))
    if visibility is not None:
        qs = qs.filter(visibility=Visibility.from_name(visibility))
    if viewer is not None:
        if membership:
            qs = qs.filter(projects_with_access(viewer, AccessLevel.GUEST))
        if min_access_level is not None:
            qs = qs.filter(projects_with_access(viewer, min_access_level))
        if owned:
            qs = qs.filter(namespace__owner=viewer)
    elif membership or owned or min_access_level is not None:
        qs = qs.none()
    field = order_by or "created_at"
    prefix = "" if sort == "asc" else "-"
    return qs.order_by(f"{prefix}{field}", f"{prefix}id")


def list_groups(
    *,
    viewer: User | None,
    parent: Namespace | None = None,
    ancestor: Namespace | None = None,
    search: str | None = None,
    owned: bool | None = None,
    min_access_level: int | None = None,
    top_level_only: bool | None = None,
    skip_groups: list[int] | None = None,
    order_by: str | None = None,
    sort: str | None = None,
) -> QuerySet[Namespace]:
    """Groups visible to ``viewer`` (admins: all), or the visible children of ``parent``,
    or the visible descendants of ``ancestor`` (children, their children, ...)."""
    qs = permissions.visible_groups(viewer).select_related("parent")
    if parent is not None:
        qs = qs.filter(parent=parent)
    if ancestor is not None:
        qs = qs.filter(pk__any=ancestor.self_and_descendant_ids()[1:])
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(path__icontains=search))
    if top_level_only:
        qs = qs.filter(parent__isnull=True)
    if skip_groups:
        qs = qs.exclude(pk__any=skip_groups)
    if viewer is not None:
        if owned:
            qs = qs.filter(pk__any=permissions.member_group_ids(viewer, AccessLevel.OWNER))
        if min_access_level is not None:
            qs = qs.filter(pk__any=permissions.member_group_ids(viewer, min_access_level))
    elif owned or min_access_level is not None:
        qs = qs.none()
    prefix = "-" if sort == "desc" else ""
    return qs.order_by(f"{prefix}{order_by or 'name'}", f"{prefix}id")


def _filter_members(qs: QuerySet, query: str | None, user_ids: list[int] | None) -> QuerySet:
    qs = qs.active().select_related("user", "created_by")
    if query:
        qs = qs.filter(Q(user__username__icontains=query) | Q(user__name__icontains=query))
    if user_ids:
        qs = qs.filter(user_id__any=user_ids)
    return qs


def direct_members(source: Project | Namespace, *, query: str | None = None, user_ids: list[int] | None = None):
    """Direct members of a project or group, by membership id."""
    qs = source.members.all()
    return _filter_members(qs, query, user_ids).order_by("id")


class EffectiveMembers(Sequence):
    """Effective members of a project or group (direct and inherited from ancestor
    groups), one row per user with the highest access level, ordered by user id. Read a
    page at a time: counting is one query, and a slice loads only its users' rows."""

    def __init__(self, direct: QuerySet, inherited: QuerySet | None):
        self._direct, self._inherited = direct, inherited
        condition = Q(pk__in=direct.values("user_id"))
        if inherited is not None:
            condition |= Q(pk__in=inherited.values("user_id"))
        self._user_ids = User.objects.filter(condition).order_by("pk").values_list("pk", flat=True)

    def __len__(self) -> int:
        return self._user_ids.count()

    def __getitem__(self, index):
        if not isinstance(index, slice):
            return self[index : index + 1][0]
        ids = list(self._user_ids[index])
        rows = list(self._direct.filter(user_id__any=ids))
        if self._inherited is not None:
            rows += list(self._inherited.filter(user_id__any=ids))
        best: dict[int, object] = {}
        for row in rows:
            current = best.get(row.user_id)
            if current is None or row.access_level > current.access_level:
                best[row.user_id] = row
        return [best[user_id] for user_id in ids]


def all_members(
    source: Project | Namespace, *, query: str | None = None, user_ids: list[int] | None = None
) -> EffectiveMembers:
    """Effective members: direct and inherited from ancestor groups, one row per user with
    the highest access level, ordered by user id."""
    direct = _filter_members(source.members.all(), query, user_ids)
    namespace = source.namespace if isinstance(source, Project) else source.parent
    inherited = None
    if namespace is not None and namespace.is_group:
        group_ids = namespace.self_and_ancestor_ids()
        inherited = _filter_members(GroupMember.objects.filter(group_id__any=group_ids), query, user_ids)
    return EffectiveMembers(direct, inherited)


def find_direct_member(source: Project | Namespace, raw_user_id: str):
    user_id = parse_int_id(raw_user_id)
    row = direct_members(source).filter(user_id=user_id).first() if user_id else None
    if row is None:
        raise not_found("Member")
    return row


def find_running_ci_job(secret: str) -> CiJob | None:
    """The running job whose token is ``secret``, with its project and user (the realm's
    ``gitlab-ci-token`` login and the API's ``JOB-TOKEN`` share it); None for an unknown
    or finished job. Looked up by digest, compared in constant time."""
    wanted = tokens.digest(secret)
    job = (
        CiJob.objects.select_related("project", "user").filter(token_digest=wanted, status=CiJob.Status.RUNNING).first()
    )
    if job is None or not hmac.compare_digest(job.token_digest, wanted):
        return None
    return job


def deploy_token_by_secret(secret: str) -> DeployToken | None:
    """The deploy token whose secret is ``secret`` (revoked and expired ones too: callers
    say why they refuse); None when there is none. Looked up by digest with one fixed
    statement, prepared on PostgreSQL (the realm runs it for every deploy-token login;
    through the ORM, building the query cost more than answering it), and compared in
    constant time."""
    loader, sql = _deploy_token_statement()
    wanted = tokens.digest(secret)
    rows = fetch_all(sql, [wanted])
    if not rows:
        return None
    token = loader.load(rows[0])
    return token if hmac.compare_digest(token.token_digest, wanted) else None


@functools.cache
def _deploy_token_statement() -> tuple[RowLoader, str]:
    loader = RowLoader(DeployToken, frozenset(f.attname for f in DeployToken._meta.concrete_fields), "d")
    return loader, f"SELECT {loader.columns} FROM {DeployToken._meta.db_table} d WHERE d.token_digest = %s"


def list_deploy_tokens(owner: Project | Namespace | None, *, active: bool | None = None) -> QuerySet[DeployToken]:
    """Deploy tokens of a project or a group (``None``: every token, for administrators),
    by id; ``active`` keeps only the usable (True) or unusable (False) ones."""
    qs = DeployToken.objects.all() if owner is None else _owned_deploy_tokens(owner)
    if active is not None:
        active_ids = DeployToken.objects.active().values("pk")
        qs = qs.filter(pk__in=active_ids) if active else qs.exclude(pk__in=active_ids)
    return qs.order_by("id")


def find_deploy_token(owner: Project | Namespace, raw_id: str) -> DeployToken:
    """The deploy token ``raw_id`` of ``owner``; else 404 Not found."""
    token_id = parse_int_id(raw_id)
    token = _owned_deploy_tokens(owner).filter(pk=token_id).first() if token_id else None
    if token is None:
        raise not_found()
    return token


def _owned_deploy_tokens(owner: Project | Namespace) -> QuerySet[DeployToken]:
    if isinstance(owner, Project):
        return DeployToken.objects.filter(deploy_token_type=DeployToken.Type.PROJECT, project=owner)
    return DeployToken.objects.filter(deploy_token_type=DeployToken.Type.GROUP, group=owner)
