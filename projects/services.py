"""Writes to groups, projects, memberships and deploy tokens.

Services validate what the request layer cannot (uniqueness, path rules, visibility
against the parent, the Owner rules of memberships) and raise ``ServiceError`` in GitLab's
shapes. Anything that writes more than once is atomic: on failure nothing changes.
"""

from __future__ import annotations

import datetime as dt
import re

from django.db import IntegrityError, transaction
from django.utils import timezone

from gitlab_core import audit
from gitlab_core.errors import bad_request, conflict, forbidden
from gitlab_core.models import User
from gitlab_core.signals import send_access_changed
from projects import permissions
from projects.models import (
    AccessLevel,
    DeployToken,
    GroupMember,
    Namespace,
    Project,
    ProjectMember,
    Visibility,
)
from projects.paths import path_problems
from projects.signals import project_deletion_requested

DEPLOY_USERNAME_RE = re.compile(r"\A[A-Za-z0-9._+-]+\Z")
LAST_OWNER = "A group must have at least one owner"


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


def slugify_path(name: str) -> str:
    """GitLab's default project path for a name: lower-case, runs of other characters
    become ``-``, no separator at either end."""
    slug = re.sub(r"[^a-z0-9_.]+", "-", name.lower())
    return re.sub(r"\A[-._]+|[-._]+\Z", "", slug)


def personal_namespace(user: User) -> Namespace:
    """The user's personal namespace, created on first use (e.g. for a user made by
    ``createsuperuser``). Raises 400 when a group already holds that path.

    Two first uses at the same time (two project creations) both get the one namespace:
    the second INSERT waits for the first and fails on the unique owner, and the row the
    first one committed is read again."""
    existing = Namespace.objects.filter(owner=user, kind=Namespace.Kind.USER).first()
    if existing is not None:
        return existing
    if Namespace.objects.filter(full_path_lower=user.username.lower()).exists():
        raise bad_request({"namespace": ["is not valid"]})
    try:
        with transaction.atomic():
            return Namespace.objects.create(kind=Namespace.Kind.USER, name=user.name, path=user.username, owner=user)
    except IntegrityError:
        existing = Namespace.objects.filter(owner=user, kind=Namespace.Kind.USER).first()
        if existing is None:
            # A group took the path in between.
            raise bad_request({"namespace": ["is not valid"]})
        return existing


# --- groups -------------------------------------------------------------------------------


def _group_visibility_problem(visibility: int, parent: Namespace | None) -> str | None:
    if parent is not None and visibility > parent.visibility:
        return (
            f"{Visibility(visibility).label} is not allowed since the parent group has a "
            f"{parent.visibility_name} visibility."
        )
    return None


def create_group(
    *,
    creator: User,
    name: str,
    path: str,
    parent: Namespace | None,
    visibility: int,
    description: str = "",
) -> Namespace:
    """Create a (sub)group; the creator becomes its direct Owner.

    Raises ``ServiceError`` 400 ("Failed to save group ...") for a bad or taken path and for
    a visibility above the parent's.
    """
    for problem in path_problems(path, parent=parent):
        raise bad_request(f'Failed to save group {{:path=>["{problem}"]}}')
    problem = _group_visibility_problem(visibility, parent)
    if problem:
        raise bad_request({"visibility_level": [problem]})
    try:
        with transaction.atomic():
            group = Namespace.objects.create(
                kind=Namespace.Kind.GROUP,
                name=name,
                path=path,
                parent=parent,
                visibility=visibility,
                description=description,
            )
            GroupMember.objects.create(group=group, user=creator, access_level=AccessLevel.OWNER, created_by=creator)
            record_group_created(group)
    except IntegrityError:
        raise bad_request('Failed to save group {:path=>["has already been taken"]}')
    return group


def record_group_created(group: Namespace) -> None:
    audit.record("group_created", entity=group, target=group, message="Created group")


# Attribute -> the event name's middle part (GitLab's names, where it has them).
AUDITED_ATTRIBUTES = {
    "visibility": "visibility_level",
    "container_registry_access_level": "container_registry_access_level",
    "path": "path",
    "name": "name",
}


def record_attribute_changes(subject: Project | Namespace, before: dict) -> None:
    """Audit each attribute of a saved group or project that differs from ``before``
    (attribute -> stored value), one event per attribute."""
    kind = "project" if isinstance(subject, Project) else "group"
    for attribute, old in before.items():
        new = getattr(subject, attribute)
        if new == old:
            continue
        if attribute == "visibility":
            old, new = Visibility(old).label, Visibility(new).label
        event_name = f"{kind}_{AUDITED_ATTRIBUTES[attribute]}_updated"
        audit.record(event_name, entity=subject, target=subject, change=(attribute, old, new))


# --- projects -----------------------------------------------------------------------------


def _project_problems(
    *, namespace: Namespace, name: str, path: str, visibility: int, project: Project | None = None
) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    exclude = project.pk if project else None
    path_problem = path_problems(path, parent=namespace, exclude_project=exclude)
    if path_problem:
        problems["path"] = path_problem
    if not name.strip():
        problems["name"] = ["can't be blank"]
    elif namespace.projects.filter(name__iexact=name, pending_delete=False).exclude(pk=exclude).exists():
        problems["name"] = ["has already been taken"]
    if namespace.is_group and visibility > namespace.visibility:
        problems["visibility_level"] = [
            f"{Visibility(visibility).label} is not allowed in a {namespace.visibility_name} group."
        ]
    return problems


def create_project(
    *,
    creator: User,
    namespace: Namespace,
    name: str,
    path: str,
    visibility: int,
    description: str | None = None,
    container_registry_access_level: str = "enabled",
) -> Project:
    """Create a project (and, through ``post_save``, its default cleanup policy).

    In a personal namespace the owner becomes a direct Owner member, as in GitLab.
    Raises ``ServiceError`` 400 ``{"message": {field: [...]}}`` for taken or invalid
    names/paths and a visibility above the group's. Call inside a transaction when more
    writes follow (the project API does).
    """
    problems = _project_problems(namespace=namespace, name=name, path=path, visibility=visibility)
    if problems:
        raise bad_request(problems)
    try:
        with transaction.atomic():
            project = create_project_records(
                namespace=namespace,
                path=path,
                name=name,
                creator=creator,
                visibility=visibility,
                description=description,
                container_registry_access_level=container_registry_access_level,
            )
            if not namespace.is_group and namespace.owner_id is not None:
                ProjectMember.objects.create(
                    project=project, user_id=namespace.owner_id, access_level=AccessLevel.OWNER, created_by=creator
                )
            record_project_created(project)
    except IntegrityError:
        raise bad_request({"path": ["has already been taken"]})
    return project


def record_project_created(project: Project) -> None:
    audit.record("project_created", entity=project, target=project, message="Created project")


def update_project(*, project: Project, changes: dict) -> Project:
    """Apply ``changes`` (name, path, description, visibility, container registry access
    level) to ``project``.

    A project that holds container images cannot change its path (the images live under
    it in the registry). Raises ``ServiceError`` 400 like ``create_project``.
    """
    name = changes.get("name", project.name)
    path = changes.get("path", project.path)
    visibility = changes.get("visibility", project.visibility)
    problems = _project_problems(
        namespace=project.namespace, name=name, path=path, visibility=visibility, project=project
    )
    if problems:
        raise bad_request(problems)
    if path != project.path and project.container_repositories.exists():
        raise bad_request("Cannot rename project because it contains container registry tags!")
    before = {field: getattr(project, field) for field in AUDITED_ATTRIBUTES}
    for field, value in changes.items():
        setattr(project, field, value)
    project.last_activity_at = timezone.now()
    try:
        with transaction.atomic():
            project.save()
            record_attribute_changes(project, before)
    except IntegrityError:
        raise bad_request({"path": ["has already been taken"]})
    return project


def request_project_deletion(*, project: Project) -> None:
    """Delete ``project`` as far as the API is concerned, at once.

    Marks it ``pending_delete`` (every lookup then answers 404), tells the registry app
    through ``project_deletion_requested`` (it schedules the deletion of the project's
    container repositories), and deletes the row right away when no repository is left.
    Otherwise the row goes with the last repository.
    """
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(pending_delete=True)
        audit.record("project_destroyed", entity=project, target=project, message="Deleted project")
        project.pending_delete = True
        project_deletion_requested.send(sender=Project, project=project)
        if not project.container_repositories.exists():
            project.delete()
    send_access_changed(Project)


# --- members ------------------------------------------------------------------------------


def _may_manage_owners(actor: User, source: Project | Namespace) -> bool:
    if isinstance(source, Project):
        return permissions.can(actor, permissions.MANAGE_PROJECT_OWNERS, source)
    return permissions.can(actor, permissions.ADMIN_GROUP_MEMBER, source)


def _inherited(user: User, source: Project | Namespace) -> GroupMember | None:
    """The highest membership ``user`` inherits on ``source`` from ancestor groups."""
    namespace = source.namespace if isinstance(source, Project) else source.parent
    if namespace is None or not namespace.is_group:
        return None
    return (
        GroupMember.objects.active()
        .filter(user=user, group_id__any=namespace.self_and_ancestor_ids())
        .select_related("group")
        .order_by("-access_level")
        .first()
    )


def _check_level(user: User, source: Project | Namespace, access_level: int) -> None:
    inherited = _inherited(user, source)
    if inherited is not None and access_level < inherited.access_level:
        label = AccessLevel(inherited.access_level).label
        raise bad_request(
            {
                "access_level": [
                    f"should be greater than or equal to {label} inherited membership from group {inherited.group.name}"
                ]
            }
        )


def _check_expiry(expires_at: dt.date | None) -> None:
    if expires_at is not None and expires_at <= timezone.now().date():
        raise bad_request({"expires_at": ["cannot be a date in the past"]})


def _would_lose_last_owner(group: Namespace, leaving_user_id: int) -> bool:
    owners = GroupMember.objects.active().filter(access_level=AccessLevel.OWNER)
    others_here = owners.filter(group=group).exclude(user_id=leaving_user_id).exists()
    # An Owner of an ancestor group owns this group too.
    from_ancestors = owners.filter(group_id__any=[a.pk for a in group.ancestors()]).exists()
    return not (others_here or from_ancestors)


def add_member(
    *, source: Project | Namespace, actor: User, user: User, access_level: int, expires_at: dt.date | None = None
):
    """Make ``user`` a direct member of a project or group.

    Only Owners (and admins) may grant Owner (403). Raises 409 when ``user`` is already a
    direct member and 400 when the level is below one inherited from an ancestor group.
    """
    if access_level == AccessLevel.OWNER and not _may_manage_owners(actor, source):
        raise forbidden()
    if source.members.filter(user=user).exists():
        raise conflict("Member already exists")
    _check_level(user, source, access_level)
    _check_expiry(expires_at)
    try:
        with transaction.atomic():
            member = source.members.create(
                user=user, access_level=access_level, expires_at=expires_at, created_by=actor
            )
            record_member_created(source, member)
            return member
    except IntegrityError:
        raise conflict("Member already exists")


def update_member(*, member, actor: User, access_level: int, changes_expiry: bool, expires_at: dt.date | None):
    """Change a direct membership's level (and expiry when ``changes_expiry``).

    Only Owners may touch an Owner or grant Owner (403); a group keeps at least one
    Owner (400).
    """
    source = member.project if isinstance(member, ProjectMember) else member.group
    touches_owner = AccessLevel.OWNER in (member.access_level, access_level)
    if touches_owner and not _may_manage_owners(actor, source):
        raise forbidden()
    _check_level(member.user, source, access_level)
    if changes_expiry:
        _check_expiry(expires_at)
    if (
        isinstance(member, GroupMember)
        and member.access_level == AccessLevel.OWNER
        and access_level < AccessLevel.OWNER
        and _would_lose_last_owner(member.group, member.user_id)
    ):
        raise bad_request(LAST_OWNER)
    before = {"access_level": member.access_level, "expires_at": member.expires_at}
    member.access_level = access_level
    if changes_expiry:
        member.expires_at = expires_at
    with transaction.atomic():
        member.save(update_fields=["access_level", "expires_at"])
        record_member_updated(source, member, before)
    return member


def remove_member(*, member, actor: User) -> None:
    """Remove a direct membership. Removing an Owner needs an Owner (403) unless it is the
    actor leaving; the last Owner of a group cannot go (400)."""
    source = member.project if isinstance(member, ProjectMember) else member.group
    leaving = member.user_id == actor.pk
    if member.access_level == AccessLevel.OWNER and not leaving and not _may_manage_owners(actor, source):
        raise forbidden()
    with transaction.atomic():
        if isinstance(member, GroupMember):
            # Lock the group's owner rows so two owners cannot leave at the same time.
            list(GroupMember.objects.select_for_update().filter(group=member.group, access_level=AccessLevel.OWNER))
            if member.access_level == AccessLevel.OWNER and _would_lose_last_owner(member.group, member.user_id):
                raise bad_request(LAST_OWNER)
        member.delete()
        record_member_destroyed(source, member)


# GitLab's member events: the entity is the project or group, the target the member's user.


def record_member_created(source: Project | Namespace, member) -> None:
    level = AccessLevel(member.access_level).label
    audit.record(
        "member_created",
        entity=source,
        target=member.user,
        target_details=member.user.username,
        message=f"Added member as {level}" + (f" until {member.expires_at}" if member.expires_at else ""),
    )


def record_member_updated(source: Project | Namespace, member, before: dict) -> None:
    for attribute, old in before.items():
        new = getattr(member, attribute)
        if new == old:
            continue
        if attribute == "access_level":
            old, new = AccessLevel(old).label, AccessLevel(new).label
        audit.record(
            "member_updated",
            entity=source,
            target=member.user,
            target_details=member.user.username,
            change=(attribute, old, new),
        )


def record_member_destroyed(source: Project | Namespace, member) -> None:
    audit.record(
        "member_destroyed",
        entity=source,
        target=member.user,
        target_details=member.user.username,
        message=f"Removed member (was {AccessLevel(member.access_level).label})",
    )


# --- deploy tokens ------------------------------------------------------------------------


def create_deploy_token(
    *,
    owner: Project | Namespace,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None = None,
    username: str | None = None,
) -> tuple[DeployToken, str]:
    """Create a deploy token of a project, or of a group (it reaches every project of the
    group and its subgroups); returns it with its ``gldt-`` secret (shown once).

    ``username`` defaults to ``gitlab+deploy-token-<id>`` and is unique per project or
    group. Raises ``ServiceError`` 400 for blank scopes or a bad/taken username.
    """
    if not scopes:
        raise bad_request("Scopes can't be blank")
    is_group = isinstance(owner, Namespace)
    owned = {"group": owner} if is_group else {"project": owner}
    if username is not None:
        if not DEPLOY_USERNAME_RE.match(username):
            raise bad_request({"username": ["can contain only letters, digits, '_', '-', '+', and '.'"]})
        if DeployToken.objects.filter(**owned, username__iexact=username).exists():
            raise bad_request({"username": ["has already been taken"]})
    token = DeployToken(
        deploy_token_type=DeployToken.Type.GROUP if is_group else DeployToken.Type.PROJECT,
        **owned,
        name=name,
        scopes=list(dict.fromkeys(scopes)),
        expires_at=expires_at,
        username=username or "",
    )
    secret = token.set_secret()
    with transaction.atomic():
        token.save()
        record_deploy_token_created(token)
    return token, secret


def record_deploy_token_created(token: DeployToken) -> None:
    audit.record(
        "deploy_token_created",
        entity=token.owner,
        target=token,
        target_details=token.name,
        message=(
            f"Created {token.deploy_token_type} deploy token {token.username} with scopes {', '.join(token.scopes)}"
        ),
    )


def delete_deploy_token(*, token: DeployToken) -> None:
    """Delete a deploy token: it is no longer listed and stops working for registry logins."""
    with transaction.atomic():
        audit.record(
            "deploy_token_destroyed",
            entity=token.owner,
            target=token,
            target_details=token.name,
            message=f"Deleted {token.deploy_token_type} deploy token {token.username}",
        )
        token.delete()


def record_deploy_token_revoked_flag(token: DeployToken) -> None:
    """Audit an administrator's direct change of ``token``'s revoked flag (the admin form)."""
    if token.revoked:
        _record_deploy_token_revoked(token)
    else:
        audit.record(
            "deploy_token_updated",
            entity=token.owner,
            target=token,
            target_details=token.name,
            change=("revoked", True, False),
        )
    send_access_changed(DeployToken)


def _record_deploy_token_revoked(token: DeployToken) -> None:
    audit.record(
        "deploy_token_revoked",
        entity=token.owner,
        target=token,
        target_details=token.name,
        message=f"Revoked {token.deploy_token_type} deploy token {token.username}",
    )


def revoke_deploy_tokens(*, tokens) -> int:
    """Revoke the active deploy tokens among ``tokens`` (a queryset: the admin's
    selection); returns how many were revoked."""
    with transaction.atomic():
        active = list(tokens.filter(revoked=False).select_related("project", "group").select_for_update(of=("self",)))
        DeployToken.objects.filter(pk__any=[t.pk for t in active], revoked=False).update(revoked=True)
        for token in active:
            _record_deploy_token_revoked(token)
    send_access_changed(DeployToken)
    return len(active)
