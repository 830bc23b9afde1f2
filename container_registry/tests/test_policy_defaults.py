"""The cleanup policy a new project starts with: the instance's default (application
settings), or the default of the nearest group above it that has one (``PUT /groups/:id``
with ``container_expiration_policy_attributes``); checked as a project's policy is, and
audited."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from container_registry.models import ContainerExpirationPolicy
from gitlab_core.models import ApplicationSettings, AuditEvent
from tests_support.factories import make_group, make_project, make_token, make_user

pytestmark = pytest.mark.django_db

POLICY_KEYS = ("enabled", "cadence", "keep_n", "older_than", "name_regex", "name_regex_keep")


def as_user(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(user))
    return client


def policy_of(project) -> dict:
    policy = ContainerExpirationPolicy.objects.get(project=project)
    return {key: getattr(policy, key) for key in POLICY_KEYS}


def test_new_projects_take_the_instance_default_set_through_the_settings_api(admin, world):
    response = as_user(admin).put(
        "/api/v4/application/settings",
        {
            "container_expiration_policy_enabled_by_default": True,
            "container_expiration_policy_default_cadence": "7d",
            "container_expiration_policy_default_keep_n": 5,
            "container_expiration_policy_default_older_than": "",
            "container_expiration_policy_default_name_regex": "v.+",
            "container_expiration_policy_default_name_regex_keep": "stable",
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["container_expiration_policy_default_cadence"] == "7d"
    assert body["container_expiration_policy_default_older_than"] is None
    assert body["container_registry_cleanup_brake_enabled"] is True
    project = make_project(world["platform"], "fresh")
    assert policy_of(project) == {
        "enabled": True,
        "cadence": "7d",
        "keep_n": 5,
        "older_than": None,
        "name_regex": "v.+",
        "name_regex_keep": "stable",
    }
    changed = set(
        AuditEvent.objects.filter(event_name="application_setting_updated").values_list("details__change", flat=True)
    )
    assert "container_expiration_policy_default_name_regex_keep" in changed


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"container_expiration_policy_default_cadence": "2d"}, "container_expiration_policy_default_cadence"),
        ({"container_expiration_policy_default_keep_n": 7}, "container_expiration_policy_default_keep_n"),
        ({"container_expiration_policy_default_older_than": "1d"}, "container_expiration_policy_default_older_than"),
        ({"container_expiration_policy_default_name_regex": "(a"}, "container_expiration_policy_default_name_regex"),
        (
            {
                "container_expiration_policy_enabled_by_default": True,
                "container_expiration_policy_default_name_regex": "",
            },
            "container_expiration_policy_default_name_regex",
        ),
    ],
)
def test_an_invalid_instance_default_is_refused_and_nothing_changes(admin, changes, problem):
    response = as_user(admin).put("/api/v4/application/settings", changes, format="json")
    assert response.status_code == 400
    assert problem in response.json()["message"]
    settings = ApplicationSettings.current()
    assert (
        settings.container_expiration_policy_default_cadence,
        settings.container_expiration_policy_enabled_by_default,
    ) == ("1d", False)


def test_the_brake_settings_are_bounded(admin):
    client = as_user(admin)
    assert (
        client.put("/api/v4/application/settings", {"container_registry_cleanup_brake_percent": 101}).status_code == 400
    )
    assert client.put("/api/v4/application/settings", {"container_registry_cleanup_brake_tags": -1}).status_code == 400
    response = client.put(
        "/api/v4/application/settings",
        {"container_registry_cleanup_brake_enabled": False, "container_registry_cleanup_brake_tags": 10},
    )
    assert response.status_code == 200
    settings = ApplicationSettings.current()
    assert (settings.container_registry_cleanup_brake_enabled, settings.container_registry_cleanup_brake_tags) == (
        False,
        10,
    )
    assert AuditEvent.objects.filter(details__change="container_registry_cleanup_brake_enabled").exists()


def test_the_nearest_group_default_wins_and_removing_it_inherits_again(world):
    owner = world["users"]["owner"]
    acme, platform = world["acme"], world["platform"]
    client = as_user(owner)

    response = client.put(
        f"/api/v4/groups/{acme.pk}",
        {"container_expiration_policy_attributes": {"enabled": True, "cadence": "14d", "keep_n": 25}},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["container_expiration_policy"]["cadence"] == "14d"
    # The rest of the group's default is what it inherited when it was set.
    assert response.json()["container_expiration_policy"]["name_regex"] == ".*"
    assert policy_of(make_project(platform, "one"))["cadence"] == "14d"

    client.put(
        f"/api/v4/groups/{platform.pk}",
        {"container_expiration_policy_attributes": {"cadence": "1month", "name_regex": "dev-.*"}},
        format="json",
    )
    nearest = policy_of(make_project(platform, "two"))
    assert (nearest["cadence"], nearest["name_regex"], nearest["keep_n"]) == ("1month", "dev-.*", 25)
    assert policy_of(make_project(make_group("elsewhere"), "three"))["cadence"] == "1d"  # the instance's

    response = client.put(
        f"/api/v4/groups/{platform.pk}", {"container_expiration_policy_attributes": None}, format="json"
    )
    assert response.json()["container_expiration_policy"] is None
    assert policy_of(make_project(platform, "four"))["cadence"] == "14d"
    changes = AuditEvent.objects.filter(event_name="group_cleanup_policy_default_updated", entity_id=platform.pk)
    assert set(changes.values_list("details__change", flat=True)) >= {"cadence", "name_regex"}


def test_a_group_default_is_checked_and_only_owners_set_it(world):
    platform = world["platform"]
    url = f"/api/v4/groups/{platform.pk}"
    bad = {"container_expiration_policy_attributes": {"name_regex_keep": "(x"}}
    response = as_user(world["users"]["owner"]).put(url, bad, format="json")
    assert response.status_code == 400
    assert "container_expiration_policy.name_regex_keep" in response.json()["message"]
    good = {"container_expiration_policy_attributes": {"keep_n": 5}}
    assert as_user(world["users"]["maintainer"]).put(url, good, format="json").status_code == 403
    assert as_user(world["users"]["outsider"]).put(url, good, format="json").status_code == 404
    platform.refresh_from_db()
    assert platform.container_expiration_policy_default is None


def test_the_admin_refuses_an_invalid_default_regex(db):
    browser = Client()
    browser.force_login(make_user("root", admin=True))
    url = "/admin/gitlab_core/applicationsettings/1/change/"
    form = browser.get(url).context["adminform"].form
    data = {name: value for name, value in form.initial.items() if value is not None and name in form.fields}
    data["container_expiration_policy_default_name_regex"] = "(unclosed"

    response = browser.post(url, data)

    assert response.status_code == 200
    assert b"not valid RE2 syntax" in response.content
    assert ApplicationSettings.current().container_expiration_policy_default_name_regex == ".*"


def test_an_administrator_sets_and_removes_a_group_default_in_the_admin(world):
    platform = world["platform"]
    browser = Client()
    browser.force_login(make_user("root", admin=True))
    url = f"/admin/container_registry/groupcleanuppolicydefault/{platform.pk}/change/"
    form = {"own_default": "on", "enabled": "on", "cadence": "7d", "keep_n": "5", "older_than": "", "name_regex": "(x"}

    refused = browser.post(url, form)
    assert refused.status_code == 200 and b"not valid RE2 syntax" in refused.content
    assert browser.post(url, {**form, "name_regex": "v.*"}).status_code == 302

    platform.refresh_from_db()
    assert platform.container_expiration_policy_default == {
        "enabled": True,
        "cadence": "7d",
        "keep_n": 5,
        "older_than": None,
        "name_regex": "v.*",
        "name_regex_keep": None,
    }
    assert policy_of(make_project(platform, "from-admin"))["cadence"] == "7d"
    assert AuditEvent.objects.filter(event_name="group_cleanup_policy_default_updated").exists()
    listing = browser.get("/admin/container_registry/groupcleanuppolicydefault/")
    assert listing.status_code == 200 and b"acme/platform" in listing.content
    assert browser.post(url, {"cadence": "1d"}).status_code == 302
    platform.refresh_from_db()
    assert platform.container_expiration_policy_default is None


@pytest.mark.parametrize("key", ["name_regex", "name_regex_keep"])
def test_a_regex_with_a_nul_is_a_400_for_groups_and_projects(world, key):
    owner = as_user(world["users"]["owner"])
    attributes = {"container_expiration_policy_attributes": {key: "v\x00.*"}}
    for url in (f"/api/v4/groups/{world['platform'].pk}", f"/api/v4/projects/{world['project'].pk}"):
        response = owner.put(url, attributes, format="json")
        assert response.status_code == 400, (url, response.content)
    world["platform"].refresh_from_db()
    assert world["platform"].container_expiration_policy_default is None
