"""The audit events of what administrators do in the admin, and the read-only audit list."""

from __future__ import annotations

import pytest

from container_registry.models import ContainerExpirationPolicy
from gitlab_core.models import AuditEvent, LoginFailures, PersonalAccessToken, User
from projects.models import AccessLevel, DeployToken, Namespace, ProjectMember
from tests_support.factories import make_token, make_user

ADDRESS = "192.0.2.44"


@pytest.fixture
def root(db):
    return make_user("root", admin=True)


@pytest.fixture
def admin_client(client, root):
    client.force_login(root)
    client.defaults["REMOTE_ADDR"] = ADDRESS
    return client


def events(event_name: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(event_name=event_name).order_by("id"))


def user_form(user: User, **changes) -> dict:
    data = {
        "username": user.username,
        "name": user.name,
        "email": user.email,
        "note": "",
        "state": user.state,
        "two_factor_enabled": "",
        "external": "",
        "can_create_group": "on",
        "projects_limit": user.projects_limit,
    }
    if user.is_superuser:
        data["is_superuser"] = "on"
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_blocking_unblocking_and_making_admin_in_the_admin_are_audited(admin_client, root):
    alice = make_user("alice")
    url = f"/admin/gitlab_core/user/{alice.pk}/change/"

    assert admin_client.post(url, user_form(alice, state="blocked")).status_code == 302
    alice.refresh_from_db()
    assert admin_client.post(url, user_form(alice, state="active", is_superuser="on")).status_code == 302
    alice.refresh_from_db()
    # A save that changes neither records nothing.
    assert admin_client.post(url, user_form(alice, note="hello")).status_code == 302

    assert [e.event_name for e in AuditEvent.objects.order_by("id")] == [
        "user_blocked",
        "user_unblocked",
        "user_admin_status_updated",
    ]
    made_admin = events("user_admin_status_updated")[0]
    assert (made_admin.details["change"], made_admin.details["from"], made_admin.details["to"]) == (
        "admin",
        False,
        True,
    )
    assert {(e.author_id, e.entity_id, e.ip_address) for e in AuditEvent.objects.all()} == {
        (root.pk, alice.pk, ADDRESS)
    }


def test_a_user_created_in_the_admin_is_audited(admin_client, root):
    admin_client.post(
        "/admin/gitlab_core/user/add/",
        {
            "username": "carol",
            "email": "carol@example.test",
            "name": "Carol",
            "password1": "pw-123456-x",
            "password2": "pw-123456-x",
        },
    )

    [event] = events("user_created")
    assert (event.author_id, event.entity_path) == (root.pk, "carol")


def test_tokens_created_and_revoked_in_the_admin_are_audited(admin_client, root):
    alice = make_user("alice")
    admin_client.post(
        "/admin/gitlab_core/personalaccesstoken/add/", {"user": alice.pk, "name": "ci", "scopes": ["api"]}
    )
    token = PersonalAccessToken.objects.get(user=alice)
    already_revoked = PersonalAccessToken.objects.get(
        pk=PersonalAccessToken.objects.create(user=alice, name="old", token_digest="0" * 64, revoked=True).pk
    )

    admin_client.post(
        "/admin/gitlab_core/personalaccesstoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk, already_revoked.pk]},
    )

    assert [e.target_id for e in events("personal_access_token_created")] == [token.pk]
    # Only the token that the action revoked has an event.
    assert [e.target_id for e in events("personal_access_token_revoked")] == [token.pk]
    assert {e.author_id for e in AuditEvent.objects.all()} == {root.pk}


def test_deploy_tokens_created_and_revoked_in_the_admin_are_audited(admin_client, world):
    project = world["project"]
    admin_client.post(
        "/admin/projects/deploytoken/add/",
        {"project": project.pk, "name": "pull", "username": "", "scopes": ["read_registry"]},
    )
    token = DeployToken.objects.get(project=project)
    admin_client.post(
        "/admin/projects/deploytoken/", {"action": "revoke_deploy_tokens", "_selected_action": [token.pk]}
    )

    for name in ("deploy_token_created", "deploy_token_revoked"):
        [event] = events(name)
        assert (event.entity_type, event.entity_id, event.target_id) == ("Project", project.pk, token.pk)


def test_settings_saved_in_the_admin_are_audited(admin_client, root):
    from gitlab_core.tests.test_admin import SETTINGS_URL, settings_form

    admin_client.post(SETTINGS_URL, settings_form(container_registry_token_expire_delay=30))

    [event] = events("application_setting_updated")
    assert (event.details["change"], event.details["from"], event.details["to"]) == (
        "container_registry_token_expire_delay",
        5,
        30,
    )
    assert event.author_id == root.pk


def test_groups_and_projects_saved_in_the_admin_are_audited(admin_client, world):
    platform, project = world["platform"], world["project"]
    admin_client.post(
        "/admin/projects/group/add/",
        {
            "name": "Tools",
            "path": "tools",
            "parent": world["acme"].pk,
            "description": "",
            "visibility": 0,
            "request_access_enabled": "on",
            "members-TOTAL_FORMS": 0,
            "members-INITIAL_FORMS": 0,
        },
    )
    tools = Namespace.objects.get(path="tools")
    developer = world["users"]["developer"]
    membership = ProjectMember.objects.get(project=project, user=developer)
    response = admin_client.post(
        f"/admin/projects/project/{project.pk}/change/",
        {
            "name": project.name,
            "description": "",
            "visibility": 0,
            "container_registry_access_level": "private",
            "members-TOTAL_FORMS": 2,
            "members-INITIAL_FORMS": 1,
            "members-0-id": membership.pk,
            "members-0-project": project.pk,
            "members-0-user": developer.pk,
            "members-0-access_level": AccessLevel.MAINTAINER,
            "members-0-expires_at": "",
            "members-1-project": project.pk,
            "members-1-user": world["users"]["outsider"].pk,
            "members-1-access_level": AccessLevel.GUEST,
            "members-1-expires_at": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    [created] = events("group_created")
    assert (created.entity_type, created.entity_id, created.entity_path) == ("Group", tools.pk, "acme/tools")
    [registry] = events("project_container_registry_access_level_updated")
    assert (registry.details["from"], registry.details["to"]) == ("enabled", "private")
    [updated] = events("member_updated")
    assert (updated.target_details, updated.details["from"], updated.details["to"]) == (
        "developer",
        "Developer",
        "Maintainer",
    )
    [added] = events("member_created")
    assert (added.entity_id, added.target_details) == (project.pk, "outsider")
    assert platform.pk not in {e.entity_id for e in AuditEvent.objects.filter(entity_type="Group")}


def test_a_group_visibility_changed_in_the_admin_is_audited(admin_client, world):
    acme = world["acme"]

    response = admin_client.post(
        f"/admin/projects/group/{acme.pk}/change/",
        {
            "name": acme.name,
            "description": "",
            "visibility": 10,
            "request_access_enabled": "on",
            "members-TOTAL_FORMS": 0,
            "members-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302

    [event] = events("group_visibility_level_updated")
    assert (event.entity_type, event.entity_id, event.details["from"], event.details["to"]) == (
        "Group",
        acme.pk,
        "private",
        "internal",
    )


def test_memberships_deleted_on_the_membership_page_are_audited(admin_client, world):
    membership = ProjectMember.objects.get(user=world["users"]["guest"])

    admin_client.post(f"/admin/projects/projectmember/{membership.pk}/delete/", {"post": "yes"})

    [event] = events("member_destroyed")
    assert (event.entity_id, event.target_details) == (world["project"].pk, "guest")


def test_a_cleanup_policy_saved_in_the_admin_is_audited(admin_client, world):
    project = world["project"]
    policy = ContainerExpirationPolicy.objects.get(project=project)

    admin_client.post(
        f"/admin/container_registry/containerexpirationpolicy/{policy.pk}/change/",
        {
            "enabled": "on",
            "cadence": "7d",
            "keep_n": "5",
            "older_than": "30d",
            "name_regex": "v.*",
            "name_regex_keep": "",
        },
    )

    changes = {
        e.details["change"]: (e.details["from"], e.details["to"]) for e in events("project_cleanup_policy_updated")
    }
    assert changes["enabled"] == (False, True)
    assert changes["keep_n"][1] == 5
    assert {e.entity_id for e in events("project_cleanup_policy_updated")} == {project.pk}


def test_an_admin_lockout_and_its_lifting_in_the_admin_are_audited(client, settings, root):
    settings.ADMIN_LOCKOUT_MAX_FAILURES = 2
    for _ in range(2):
        client.post("/admin/login/", {"username": "root", "password": "wrong"}, REMOTE_ADDR="198.51.100.3")
    [ban] = events("login_ban_started")
    assert (ban.author_id, ban.ip_address, ban.target_details) == (-1, "198.51.100.3", "admin: root from 198.51.100.3")

    client.force_login(root)
    row = LoginFailures.objects.get()
    client.post("/admin/gitlab_core/loginfailures/", {"action": "lift", "_selected_action": [row.pk]})
    [lift] = events("login_ban_lifted")
    assert lift.author_id == root.pk and "lifted by admin:root" in lift.details["custom_message"]


def test_the_audit_list_is_readable_and_read_only(admin_client, root):
    make_token(root)
    alice = make_user("alice")
    admin_client.post(f"/admin/gitlab_core/user/{alice.pk}/change/", user_form(alice, state="blocked"))
    event = AuditEvent.objects.get()

    listing = admin_client.get("/admin/gitlab_core/auditevent/")
    detail = admin_client.get(f"/admin/gitlab_core/auditevent/{event.pk}/change/")

    assert listing.status_code == 200 and "user_blocked" in listing.content.decode()
    assert detail.status_code == 200 and 'name="_save"' not in detail.content.decode()
    assert admin_client.get("/admin/gitlab_core/auditevent/add/").status_code == 403
    assert admin_client.post(f"/admin/gitlab_core/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()
