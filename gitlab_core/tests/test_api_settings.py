from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from gitlab_core.models import ApplicationSettings
from tests_support.factories import make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Test users get passwords; the production hasher would make each one cost ~0.5 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


URL = "/api/v4/application/settings"


@pytest.fixture
def admin_client(admin):
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(admin))
    return client


def test_admin_reads_the_registry_settings_with_gitlab_defaults(admin_client):
    body = admin_client.get(URL).json()
    assert body["id"] == 1
    assert body["container_registry_token_expire_delay"] == 5
    assert body["container_registry_cleanup_tags_service_max_list_size"] == 200
    assert body["container_registry_delete_tags_service_timeout"] == 250
    assert body["container_registry_expiration_policies_worker_capacity"] == 4
    assert body["container_registry_expiration_policies_caching"] is True
    assert body["container_registry_features"] == []


def test_admin_changes_the_token_duration(admin_client):
    response = admin_client.put(URL, {"container_registry_token_expire_delay": 15}, format="json")
    assert response.status_code == 200
    assert response.json()["container_registry_token_expire_delay"] == 15
    assert ApplicationSettings.current().container_registry_token_expire_delay == 15


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (
            {"container_registry_token_expire_delay": "soon"},
            {"error": "container_registry_token_expire_delay is invalid"},
        ),
        (
            {"container_registry_token_expire_delay": 0},
            {"message": {"container_registry_token_expire_delay": ["must be greater than 0"]}},
        ),
        ({"container_registry_token_expire_delay": 10**30}, None),
        ({"container_registry_expiration_policies_worker_capacity": -1}, None),
        ({"container_registry_expiration_policies_caching": "sometimes"}, None),
        ({"default_project_visibility": "secret"}, None),
        ({"container_registry_vendor": "x"}, None),
        ({}, None),
    ],
)
def test_bad_settings_change_nothing(admin_client, data, body):
    response = admin_client.put(URL, {**data, "container_registry_delete_tags_service_timeout": 9}, format="json")
    if data.get("container_registry_vendor") or not data:
        # Read-only or no editable key other than the timeout: the valid key applies.
        assert response.status_code == 200
        assert response.json()["container_registry_vendor"] == ""
        return
    assert response.status_code == 400, response.content
    if body is not None:
        assert response.json() == body
    assert ApplicationSettings.current().container_registry_delete_tags_service_timeout == 250


def test_put_without_known_keys_is_a_400(admin_client):
    response = admin_client.put(URL, {"unknown": 1}, format="json")
    assert response.status_code == 400 and "at least one parameter must be provided" in response.json()["error"]


def test_settings_are_for_admins_only(db):
    assert APIClient().get(URL).status_code == 401
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(make_user("plain")))
    assert client.get(URL).status_code == 403
    assert client.put(URL, {"container_registry_token_expire_delay": 1}, format="json").status_code == 403
