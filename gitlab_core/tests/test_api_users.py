from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from gitlab_core.models import User
from projects.models import Namespace
from tests_support.factories import make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Test users get passwords; the production hasher would make each one cost ~0.5 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user, scopes=None) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(user, scopes or ["api"]))
    return client


MISSING_PASSWORD = (
    "password, reset_password, force_random_password are missing, at least one parameter must be provided"
)
NEW_USER = {"email": "bob@example.test", "username": "bob", "name": "Bob B", "password": "long-enough-1"}


def test_current_user_is_the_full_admin_view_for_an_admin(admin):
    response = client_for(admin).get("/api/v4/user")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert (body["username"], body["is_admin"], body["email"]) == ("root", True, "root@example.test")
    assert body["web_url"] == "http://testserver/root"


def test_current_user_needs_a_token():
    response = APIClient().get("/api/v4/user")
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}


def test_unknown_token_is_401_invalid_token():
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN="glpat-nope")
    response = client.get("/api/v4/user")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_bearer_header_and_query_parameter_are_accepted(admin):
    secret = make_token(admin)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v4/user").status_code == 200
    assert APIClient().get(f"/api/v4/user?private_token={secret}").status_code == 200


def test_registry_only_token_gets_insufficient_scope(admin):
    response = client_for(admin, ["read_registry"]).get("/api/v4/user")
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert "insufficient_scope" in response["WWW-Authenticate"]


def test_read_user_token_reads_users_but_not_projects(admin):
    client = client_for(admin, ["read_user"])
    assert client.get("/api/v4/users").status_code == 200
    assert client.get("/api/v4/projects").status_code == 403


def test_read_api_token_cannot_write(admin):
    response = client_for(admin, ["read_api"]).post("/api/v4/users", NEW_USER, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert not User.objects.filter(username="bob").exists()


def test_blocked_user_is_refused():
    user = make_user("blocky", state="blocked")
    response = client_for(user).get("/api/v4/user")
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden - Your account has been blocked."}


def test_admin_creates_a_user_with_a_personal_namespace(admin):
    response = client_for(admin).post("/api/v4/users", NEW_USER, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    user = User.objects.get(username="bob")
    assert body["id"] == user.pk and body["is_admin"] is False
    assert user.check_password("long-enough-1")
    namespace = Namespace.objects.get(owner=user)
    assert (namespace.kind, namespace.path, body["namespace_id"]) == ("user", "bob", namespace.pk)


def test_non_admin_cannot_create_users(world):
    response = client_for(world["users"]["owner"]).post("/api/v4/users", NEW_USER, format="json")
    assert response.status_code == 403
    assert response.json() == {"message": "403 Forbidden"}


@pytest.mark.parametrize(
    ("changes", "status", "body"),
    [
        ({"email": None, "name": None}, 400, {"error": "email is missing, name is missing"}),
        (
            {"password": None},
            400,
            {"error": MISSING_PASSWORD},
        ),
        ({"password": "short"}, 400, {"message": {"password": ["is too short (minimum is 8 characters)"]}}),
        ({"username": "root"}, 409, {"message": "Username has already been taken"}),
        ({"username": "ROOT"}, 409, {"message": "Username has already been taken"}),
        ({"email": "ROOT@example.test"}, 409, {"message": "Email has already been taken"}),
        ({"email": "not-an-email"}, 400, {"message": {"email": ["is invalid"]}}),
        ({"username": "x" * 256}, 400, {"error": "username is invalid"}),
        ({"username": "-bad"}, 400, None),
        ({"username": "a/b"}, 400, None),
        ({"name": {"nested": 1}}, 400, {"error": "name is invalid"}),
        ({"admin": "maybe"}, 400, {"error": "admin is invalid"}),
        ({"projects_limit": "many"}, 400, {"error": "projects_limit is invalid"}),
        ({"name": "nul\x00byte"}, 400, {"error": "name is invalid"}),
    ],
)
def test_bad_user_input_is_rejected_and_nothing_is_written(admin, changes, status, body):
    data = {key: value for key, value in {**NEW_USER, **changes}.items() if value is not None}
    before = User.objects.count()
    response = client_for(admin).post("/api/v4/users", data, format="json")
    assert response.status_code == status, response.content
    if body is not None:
        assert response.json() == body
    assert User.objects.count() == before


def test_missing_fields_are_listed():
    admin = make_user("root", admin=True)
    response = client_for(admin).post("/api/v4/users", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "email is missing, username is missing, name is missing"}


def test_username_of_an_existing_group_is_taken(admin):
    Namespace.objects.create(kind="group", name="Acme", path="acme")
    response = client_for(admin).post("/api/v4/users", {**NEW_USER, "username": "Acme"}, format="json")
    assert response.status_code == 409


def test_users_list_filters_and_views(world, admin):
    owner = world["users"]["owner"]
    response = client_for(owner).get("/api/v4/users", {"username": "MAINTAINER"})
    assert [u["username"] for u in response.json()] == ["maintainer"]
    assert "email" not in response.json()[0]  # basic view for non-admins
    response = client_for(admin).get("/api/v4/users", {"search": "dev"})
    assert [u["username"] for u in response.json()] == ["developer"]
    assert response.json()[0]["email"] == "developer@example.test"
    response = client_for(owner).get("/api/v4/users", {"order_by": "bogus"})
    assert response.status_code == 400
    assert response.json() == {"error": "order_by does not have a valid value"}
    response = client_for(owner).get("/api/v4/users", {"active": "perhaps"})
    assert response.json() == {"error": "active is invalid"}


def test_users_are_listed_by_id_ascending_by_default(world):
    response = client_for(world["users"]["owner"]).get("/api/v4/users", {"per_page": 100})
    ids = [u["id"] for u in response.json()]
    assert ids == sorted(ids) and len(ids) == 6


def test_get_user_by_id(world):
    viewer = world["users"]["guest"]
    target = world["users"]["owner"]
    response = client_for(viewer).get(f"/api/v4/users/{target.pk}")
    assert response.status_code == 200 and response.json()["username"] == "owner"
    assert "email" not in response.json()
    mine = client_for(viewer).get(f"/api/v4/users/{viewer.pk}").json()
    assert mine["email"] == "guest@example.test"
    for missing in ("999999", "abc", "99999999999999999999999"):
        response = client_for(viewer).get(f"/api/v4/users/{missing}")
        assert response.status_code == 404
        assert response.json() == {"message": "404 User Not Found"}
