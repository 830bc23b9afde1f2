"""The admin web UI: who may sign in, the settings page, and what token pages reveal."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.contrib.sessions.models import Session
from django.urls import reverse
from django.utils import timezone

from gitlab_core import tokens
from gitlab_core.models import ApplicationSettings, PersonalAccessToken, User
from projects.models import DeployToken, Namespace
from tests_support.factories import make_token, make_user

SETTINGS_URL = "/admin/gitlab_core/applicationsettings/1/change/"


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


def settings_form(**overrides) -> dict:
    data = {
        "container_registry_token_expire_delay": 5,
        "container_registry_refresh_token_days": 30,
        "container_registry_expiration_policies_worker_capacity": 4,
        "container_registry_cleanup_tags_service_max_list_size": 200,
        "container_registry_delete_tags_service_timeout": 250,
        "container_registry_expiration_policies_caching": "on",
        "default_projects_limit": 100000,
        "default_project_visibility": "private",
        "default_group_visibility": "private",
        "container_expiration_policy_default_cadence": "1d",
        "container_expiration_policy_default_keep_n": 10,
        "container_expiration_policy_default_older_than": "90d",
        "container_expiration_policy_default_name_regex": ".*",
        "container_registry_cleanup_brake_enabled": "on",
        "container_registry_cleanup_brake_tags": 1000,
        "container_registry_cleanup_brake_percent": 50,
    }
    data.update(overrides)
    return data


def test_anonymous_visitors_are_sent_to_the_sign_in_page(client, db):
    response = client.get(SETTINGS_URL)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_regular_user_cannot_sign_in_to_the_admin(client, db):
    make_user("alice", password="alice-password-1")

    response = client.post("/admin/login/", {"username": "alice", "password": "alice-password-1"})

    assert response.status_code == 200
    assert "Please enter the correct username and password for a staff account" in response.content.decode()


def test_an_administrator_signs_in_with_a_password(client, db):
    make_user("root", admin=True, password="root-password-1")

    response = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "root-password-1", "next": "/admin/"}
    )

    assert response.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_a_blocked_administrator_cannot_sign_in(client, db):
    make_user("root", admin=True, password="root-password-1", state=User.State.BLOCKED)

    response = client.post("/admin/login/", {"username": "root", "password": "root-password-1"})

    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_settings_page_shows_labels_and_help_text_at_a_stable_url(admin_client):
    ApplicationSettings.objects.all().delete()

    response = admin_client.get(SETTINGS_URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert "Authorization token duration (minutes)" in page
    assert "Lifetime of the tokens that /jwt/auth issues" in page
    assert "Cleanup policy maximum workers running concurrently" in page


def test_settings_list_redirects_to_the_single_settings_page(admin_client):
    response = admin_client.get("/admin/gitlab_core/applicationsettings/")

    assert response.status_code == 302
    assert response["Location"] == SETTINGS_URL


def test_settings_cannot_be_added_or_deleted(admin_client):
    assert admin_client.get("/admin/gitlab_core/applicationsettings/add/").status_code == 403
    assert admin_client.get("/admin/gitlab_core/applicationsettings/1/delete/").status_code == 403


def test_saving_the_token_duration_changes_the_setting(admin_client):
    response = admin_client.post(SETTINGS_URL, settings_form(container_registry_token_expire_delay=42))

    assert response.status_code == 302
    assert response["Location"] == SETTINGS_URL
    assert ApplicationSettings.current().container_registry_token_expire_delay == 42


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_token_duration_below_one_is_refused_on_the_page(admin_client, value):
    response = admin_client.post(SETTINGS_URL, settings_form(container_registry_token_expire_delay=value))

    assert response.status_code == 200
    assert "must be greater than 0" in response.content.decode()
    assert ApplicationSettings.current().container_registry_token_expire_delay == 5


def test_a_non_number_token_duration_is_refused_on_the_page(admin_client):
    response = admin_client.post(SETTINGS_URL, settings_form(container_registry_token_expire_delay="soon"))

    assert response.status_code == 200
    assert "Enter a whole number." in response.content.decode()


def _secret_is_nowhere_but_on_the_page(client, response, secret: str) -> None:
    """The creation's answer shows the secret once; no cookie, session or later page has it."""
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count(secret) == 1
    assert "no-store" in response["Cache-Control"]
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert all(secret not in morsel.value for morsel in client.cookies.values())
    # Messages fall back to the session when the cookie is full: it holds nothing either.
    assert not any(
        secret in session.session_data or secret in str(session.get_decoded()) for session in Session.objects.all()
    )


def test_creating_a_token_shows_the_secret_once_and_stores_only_its_digest(admin_client, db):
    alice = make_user("alice")

    response = admin_client.post(
        "/admin/gitlab_core/personalaccesstoken/add/",
        {"user": alice.pk, "name": "ci", "scopes": ["api", "read_registry"], "expires_at": ""},
    )

    secret = re.search(r"glpat-[A-Za-z0-9_-]{20,}", response.content.decode()).group(0)
    _secret_is_nowhere_but_on_the_page(admin_client, response, secret)
    token = PersonalAccessToken.objects.get(user=alice, name="ci")
    assert token.scopes == ["api", "read_registry"]
    assert token.token_digest == tokens.digest(secret)
    # The next page views no longer carry the secret.
    for url in (
        f"/admin/gitlab_core/personalaccesstoken/{token.pk}/change/",
        "/admin/gitlab_core/personalaccesstoken/",
    ):
        assert secret not in admin_client.get(url).content.decode()


def test_token_pages_never_show_the_digest(admin_client, db):
    alice = make_user("alice")
    make_token(alice, ["read_registry"])
    token = PersonalAccessToken.objects.get(user=alice)

    pages = [
        admin_client.get("/admin/gitlab_core/personalaccesstoken/").content.decode(),
        admin_client.get(f"/admin/gitlab_core/personalaccesstoken/{token.pk}/change/").content.decode(),
    ]

    for page in pages:
        assert token.token_digest not in page
        assert "read_registry" in page


def test_a_token_without_scopes_is_refused(admin_client, db):
    alice = make_user("alice")

    response = admin_client.post("/admin/gitlab_core/personalaccesstoken/add/", {"user": alice.pk, "name": "x"})

    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert not PersonalAccessToken.objects.exists()


def test_revoking_tokens_from_the_list(admin_client, db):
    alice = make_user("alice")
    make_token(alice)
    token = PersonalAccessToken.objects.get(user=alice)

    admin_client.post(
        "/admin/gitlab_core/personalaccesstoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )

    token.refresh_from_db()
    assert token.revoked is True


def test_creating_a_deploy_token_shows_the_secret_once(admin_client, world):
    project = world["project"]

    response = admin_client.post(
        "/admin/projects/deploytoken/add/",
        {"project": project.pk, "name": "pull", "username": "", "scopes": ["read_registry"]},
    )

    secret = re.search(r"gldt-[A-Za-z0-9_-]{20,}", response.content.decode()).group(0)
    _secret_is_nowhere_but_on_the_page(admin_client, response, secret)
    token = DeployToken.objects.get(project=project)
    assert token.token_digest == tokens.digest(secret)
    assert token.username == f"gitlab+deploy-token-{token.pk}"
    change_page = admin_client.get(f"/admin/projects/deploytoken/{token.pk}/change/").content.decode()
    assert token.token_digest not in change_page
    assert secret not in change_page


def test_an_admin_creates_a_group_deploy_token_and_lists_it_by_type(admin_client, world):
    group = world["acme"]
    response = admin_client.post(
        "/admin/projects/deploytoken/add/",
        {"group": group.pk, "name": "fleet", "username": "", "scopes": ["read_registry", "write_registry"]},
    )
    secret = re.search(r"gldt-[A-Za-z0-9_-]{20,}", response.content.decode()).group(0)
    token = DeployToken.objects.get(group=group)
    assert token.deploy_token_type == DeployToken.Type.GROUP and token.project is None
    assert token.token_digest == tokens.digest(secret)
    listed = admin_client.get("/admin/projects/deploytoken/?deploy_token_type__exact=group").content.decode()
    assert "fleet" in listed and "acme" in listed


@pytest.mark.parametrize("owners", ["both", "neither"])
def test_a_deploy_token_needs_exactly_one_owner_in_the_admin(admin_client, world, owners):
    data = {"name": "x", "username": "", "scopes": ["read_registry"]}
    if owners == "both":
        data.update(project=world["project"].pk, group=world["acme"].pk)
    response = admin_client.post("/admin/projects/deploytoken/add/", data)
    assert response.status_code == 200 and "Choose a project or a group" in response.content.decode()
    assert not DeployToken.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/gitlab_core/user/",
        "/admin/projects/group/",
        "/admin/projects/project/",
        "/admin/projects/groupmember/",
        "/admin/projects/projectmember/",
        "/admin/projects/deploytoken/",
        "/admin/projects/cijob/",
    ],
)
def test_administrators_browse_every_list(admin_client, world, url):
    response = admin_client.get(url)

    assert response.status_code == 200


def test_group_and_project_pages_show_their_members(admin_client, world):
    group_page = admin_client.get(f"/admin/projects/group/{world['platform'].pk}/change/").content.decode()
    project_page = admin_client.get(f"/admin/projects/project/{world['project'].pk}/change/").content.decode()

    assert "maintainer" in group_page
    assert "developer" in project_page


def test_a_project_cannot_be_more_visible_than_its_group(admin_client, world):
    project = world["project"]

    response = admin_client.post(
        f"/admin/projects/project/{project.pk}/change/",
        {
            "name": project.name,
            "description": "",
            "visibility": 20,
            "container_registry_access_level": "enabled",
            "members-TOTAL_FORMS": 0,
            "members-INITIAL_FORMS": 0,
        },
    )

    assert response.status_code == 200
    assert "public is not allowed since the group is more private" in response.content.decode()
    project.refresh_from_db()
    assert project.visibility == 0


def test_a_user_created_in_the_admin_gets_a_personal_namespace(admin_client, db):
    response = admin_client.post(
        reverse("admin:gitlab_core_user_add"),
        {
            "username": "bob",
            "name": "Bob",
            "email": "bob@example.test",
            "password1": "pw-12345678",
            "password2": "pw-12345678",
        },
    )

    assert response.status_code == 302
    bob = User.objects.get(username="bob")
    assert bob.check_password("pw-12345678")
    assert Namespace.objects.get(owner=bob).full_path == "bob"


def test_a_token_created_without_expiry_expires_in_a_year_and_not_later_than_400_days(admin_client, db):
    alice = make_user("alice")
    url = "/admin/gitlab_core/personalaccesstoken/add/"

    too_late = admin_client.post(url, {"user": alice.pk, "name": "x", "scopes": ["api"], "expires_at": "2999-01-01"})
    admin_client.post(url, {"user": alice.pk, "name": "ok", "scopes": ["api"], "expires_at": ""})

    assert "must be before" in too_late.content.decode()
    token = PersonalAccessToken.objects.get(user=alice)
    assert token.name == "ok"
    assert token.expires_at == timezone.now().date() + dt.timedelta(days=365)


def test_a_username_taken_by_a_group_is_refused(admin_client, world):
    response = admin_client.post(
        reverse("admin:gitlab_core_user_add"),
        {"username": "ACME", "name": "A", "email": "a@x.test", "password1": "pw-123456", "password2": "pw-123456"},
    )

    assert response.status_code == 200
    assert "has already been taken" in response.content.decode()
    assert not User.objects.filter(username__iexact="acme").exists()
