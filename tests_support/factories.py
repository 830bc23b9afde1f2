"""Small builders for tests (and benchmarks): users, groups, projects, tokens."""

from __future__ import annotations

from gitlab_core.models import PersonalAccessToken, User
from projects.models import AccessLevel, GroupMember, Namespace, Visibility


def make_user(username: str, *, admin: bool = False, password: str = "password123", **extra) -> User:
    user = User(username=username, email=f"{username}@example.test", name=username.title(), **extra)
    user.is_superuser = admin
    user.set_password(password)
    user.save()
    Namespace.objects.create(kind=Namespace.Kind.USER, name=username, path=username, owner=user)
    return user


def make_group(path: str, *, parent: Namespace | None = None, owner: User | None = None, visibility: str = "private"):
    group = Namespace.objects.create(
        kind=Namespace.Kind.GROUP,
        name=path.title(),
        path=path,
        parent=parent,
        visibility=Visibility.from_name(visibility),
    )
    if owner is not None:
        GroupMember.objects.create(group=group, user=owner, access_level=AccessLevel.OWNER)
    return group


def make_project(namespace: Namespace, path: str, *, creator: User | None = None, visibility: str = "private", **extra):
    from projects.services import create_project_records

    return create_project_records(
        namespace=namespace, path=path, name=path, creator=creator, visibility=Visibility.from_name(visibility), **extra
    )


def make_token(user: User, scopes: list[str] | None = None, **extra) -> str:
    token = PersonalAccessToken(user=user, name="test", scopes=scopes or ["api"], **extra)
    secret = token.set_secret()
    token.save()
    return secret


def make_protection_rule(project, pattern: str, push: int | None = None, delete: int | None = None):
    """A container repository protection rule of ``project`` (levels: ``ProtectionLevel``)."""
    from projects.models import ContainerRepositoryProtectionRule

    return ContainerRepositoryProtectionRule.objects.create(
        project=project,
        repository_path_pattern=pattern,
        minimum_access_level_for_push=push,
        minimum_access_level_for_delete=delete,
    )
