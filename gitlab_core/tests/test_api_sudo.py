"""``Sudo``: an administrator's token with the ``sudo`` scope acts as another user;
anything else is refused in GitLab's words, never answered as the caller."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests_support.factories import make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def bob(db):
    return make_user("bob")


def _client(user, scopes) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(user, scopes))
    return client


@pytest.mark.parametrize("how", ["header", "parameter"])
@pytest.mark.parametrize("name", ["id", "username", "USERNAME"])
def test_an_admin_token_with_sudo_acts_as_the_named_user(admin, bob, how, name):
    identifier = {"id": str(bob.pk), "username": "bob", "USERNAME": "BOB"}[name]
    client = _client(admin, ["api", "sudo"])
    if how == "header":
        response = client.get("/api/v4/user", HTTP_SUDO=identifier)
    else:
        response = client.get("/api/v4/user", {"sudo": identifier})
    assert response.status_code == 200 and response.json()["username"] == "bob"
    assert client.get("/api/v4/user").json()["username"] == "root"


def test_sudo_needs_the_sudo_scope(admin, bob):
    response = _client(admin, ["api"]).get("/api/v4/user", HTTP_SUDO="bob")
    assert response.status_code == 403
    assert response.json() == {
        "error": "insufficient_scope",
        "error_description": "The request requires higher privileges than provided by the access token.",
        "scope": "sudo",
    }


def test_sudo_needs_an_admin(bob):
    someone = make_user("someone")
    response = _client(someone, ["api", "sudo"]).get("/api/v4/user", HTTP_SUDO="bob")
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden - Must be admin to use sudo"}


def test_sudo_to_an_unknown_user_is_gitlabs_404(admin):
    response = _client(admin, ["api", "sudo"]).get("/api/v4/user", HTTP_SUDO="nobody")
    assert response.status_code == 404
    assert response.json() == {"message": "404 User with ID or username 'nobody' Not Found"}


def test_sudo_without_credentials_is_401(db):
    assert APIClient().get("/api/v4/projects", HTTP_SUDO="bob").status_code == 401


def test_a_sudo_write_is_made_as_the_named_user(admin, bob):
    response = _client(admin, ["api", "sudo"]).post(
        "/api/v4/groups", {"name": "Bobs", "path": "bobs"}, format="json", HTTP_SUDO="bob"
    )
    assert response.status_code == 201
    members = APIClient()
    members.credentials(HTTP_PRIVATE_TOKEN=make_token(bob))
    assert [m["username"] for m in members.get("/api/v4/groups/bobs/members").json()] == ["bob"]
