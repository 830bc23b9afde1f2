"""A user's effective access level and the active-membership rule: one statement serves
the token realm, the API and the admin, and it agrees with the ORM's ``active()``."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from projects import permissions
from projects.models import AccessLevel, DeployToken, GroupMember, ProjectMember
from tests_support.factories import make_group, make_project, make_user

pytestmark = pytest.mark.django_db

TODAY = timezone.now().date()
EXPIRIES = {
    "never": None,
    "yesterday": TODAY - dt.timedelta(days=1),
    "today": TODAY,
    "tomorrow": TODAY + dt.timedelta(days=1),
}


@pytest.mark.parametrize("expiry", list(EXPIRIES))
def test_a_membership_counts_exactly_when_the_orm_calls_it_active(expiry):
    owner = make_user("owner")
    group = make_group("grp", owner=owner)
    project = make_project(group, "app", creator=owner)
    direct, inherited = make_user("direct"), make_user("inherited")
    ProjectMember.objects.create(
        project=project, user=direct, access_level=AccessLevel.DEVELOPER, expires_at=EXPIRIES[expiry]
    )
    GroupMember.objects.create(
        group=group, user=inherited, access_level=AccessLevel.REPORTER, expires_at=EXPIRIES[expiry]
    )
    active = expiry in ("never", "tomorrow")
    assert ProjectMember.objects.active().filter(user=direct).exists() is active
    assert GroupMember.objects.active().filter(user=inherited).exists() is active
    assert permissions.project_access_level(direct, project) == (AccessLevel.DEVELOPER if active else None)
    assert permissions.project_access_level(inherited, project) == (AccessLevel.REPORTER if active else None)
    assert permissions.group_access_level(inherited, group) == (AccessLevel.REPORTER if active else None)


def test_the_level_is_the_highest_of_direct_inherited_and_personal_ownership():
    owner = make_user("owner")
    root = make_group("root", owner=owner)
    sub = make_group("sub", parent=root, owner=owner)
    project = make_project(sub, "app", creator=owner)
    user = make_user("someone")
    GroupMember.objects.create(group=root, user=user, access_level=AccessLevel.MAINTAINER)
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.REPORTER)
    assert permissions.project_access_level(user, project) == AccessLevel.MAINTAINER
    assert permissions.group_access_level(user, sub) == AccessLevel.MAINTAINER
    # A group whose path merely starts like an ancestor's ("root2") gives nothing.
    other = make_group("root2", owner=owner)
    assert permissions.group_access_level(user, other) is None
    personal = make_project(user.personal_namespace, "mine", creator=user)
    assert permissions.project_access_level(user, personal) == AccessLevel.OWNER
    found = permissions.projects_with_access_level(user=user, paths=[project.full_path_lower])
    assert found[project.full_path_lower].access_level == AccessLevel.MAINTAINER
    assert found[project.full_path_lower].root_namespace_id == root.pk


def _deploy_token(**owner) -> DeployToken:
    kind = DeployToken.Type.GROUP if "group" in owner else DeployToken.Type.PROJECT
    token = DeployToken(deploy_token_type=kind, name="t", scopes=["read_registry"], **owner)
    token.set_secret()
    token.save()
    return token


def test_the_statement_says_which_projects_a_deploy_token_reaches():
    root = make_group("root")
    sub = make_group("sub", parent=root)
    in_root, in_sub = make_project(root, "app"), make_project(sub, "app")
    lookalike = make_project(make_group("root2"), "app")
    paths = [p.full_path_lower for p in (in_root, in_sub, lookalike)]

    def reached(token):
        found = permissions.projects_with_access_level(user=None, deploy_token=token, paths=paths)
        return {path for path, access in found.items() if access.deploy_token_access}

    assert reached(_deploy_token(group=root)) == {"root/app", "root/sub/app"}
    assert reached(_deploy_token(group=sub)) == {"root/sub/app"}
    assert reached(_deploy_token(project=in_root)) == {"root/app"}
    assert reached(None) == set()
    # The same answer through project_abilities, which asks the statement itself.
    assert permissions.READ_CONTAINER_IMAGE in permissions.project_abilities(_deploy_token(group=root), in_sub)
    assert permissions.project_abilities(_deploy_token(group=sub), in_root) == frozenset()


@pytest.mark.parametrize("order", ["longest first", "shortest first"])
def test_a_key_belongs_to_the_longest_of_its_candidates_that_is_a_project(order):
    # grp/app is a project and so is grp/app/image (a project of the group grp/app).
    owner = make_user("owner")
    group = make_group("grp", owner=owner)
    outer = make_project(group, "app", creator=owner)
    inner = make_project(make_group("app", parent=group, owner=owner), "image", creator=owner)
    candidates = ["grp/app/image/x", "grp/app/image", "grp/app"]
    if order == "shortest first":
        candidates.reverse()
    found = permissions.projects_for_candidates(
        user=owner, candidates={"grp/app/image/x": candidates, "grp/app/other": ["grp/app/other", "grp/app"]}
    )
    assert found["grp/app/image/x"].project == inner
    assert found["grp/app/other"].project == outer
