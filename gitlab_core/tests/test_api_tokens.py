from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from gitlab_core import tokens
from gitlab_core.models import PersonalAccessToken
from tests_support.factories import make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Test users get passwords; the production hasher would make each one cost ~0.5 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_with(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=secret)
    return client


@pytest.fixture
def alice(db):
    return make_user("alice")


def test_admin_creates_a_token_for_a_user_and_it_works(admin, alice):
    response = client_with(make_token(admin)).post(
        f"/api/v4/users/{alice.pk}/personal_access_tokens", {"name": "ci", "scopes": ["api"]}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("glpat-") and body["user_id"] == alice.pk
    assert body["expires_at"] == (timezone.now().date() + dt.timedelta(days=365)).isoformat()
    stored = PersonalAccessToken.objects.get(pk=body["id"])
    assert stored.token_digest == tokens.digest(body["token"]) and body["token"] not in stored.token_digest
    assert client_with(body["token"]).get("/api/v4/user").json()["username"] == "alice"


def test_form_encoded_scopes_are_accepted(admin, alice):
    response = client_with(make_token(admin)).post(
        f"/api/v4/users/{alice.pk}/personal_access_tokens",
        "name=ci&scopes[]=api&scopes[]=read_registry",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 201, response.content
    assert response.json()["scopes"] == ["api", "read_registry"]


@pytest.mark.parametrize(
    ("data", "status", "body"),
    [
        ({"scopes": ["api"]}, 400, {"error": "name is missing"}),
        ({"name": "x"}, 400, {"error": "scopes is missing"}),
        ({"name": "x", "scopes": ["api", "root"]}, 400, {"error": "scopes does not have a valid value"}),
        ({"name": "x", "scopes": []}, 400, {"error": "scopes does not have a valid value"}),
        (
            {"name": "x", "scopes": "api", "expires_at": "2001-01-01"},
            400,
            {"message": {"expires_at": ["must be in the future"]}},
        ),
        ({"name": "x", "scopes": ["api"], "expires_at": "not-a-date"}, 400, {"error": "expires_at is invalid"}),
        ({"name": "x", "scopes": ["api"], "expires_at": "2999-01-01"}, 400, None),
    ],
)
def test_bad_token_requests_create_nothing(admin, alice, data, status, body):
    response = client_with(make_token(admin)).post(
        f"/api/v4/users/{alice.pk}/personal_access_tokens", data, format="json"
    )
    assert response.status_code == status, response.content
    if body is not None:
        assert response.json() == body
    assert not alice.personal_access_tokens.exists()


def test_only_admins_create_tokens_for_users(alice):
    response = client_with(make_token(alice)).post(
        f"/api/v4/users/{alice.pk}/personal_access_tokens", {"name": "x", "scopes": ["api"]}, format="json"
    )
    assert response.status_code == 403


def test_token_for_unknown_user_is_404(admin):
    response = client_with(make_token(admin)).post(
        "/api/v4/users/424242/personal_access_tokens", {"name": "x", "scopes": ["api"]}, format="json"
    )
    assert response.status_code == 404 and response.json() == {"message": "404 User Not Found"}


def test_users_list_only_their_own_tokens(admin, alice):
    make_token(admin)
    secret = make_token(alice)
    client = client_with(secret)
    listed = client.get("/api/v4/personal_access_tokens").json()
    assert {t["user_id"] for t in listed} == {alice.pk}
    assert all("token" not in t for t in listed)
    assert client.get("/api/v4/personal_access_tokens", {"user_id": admin.pk}).status_code == 401
    everyone = client_with(make_token(admin)).get("/api/v4/personal_access_tokens").json()
    assert {t["user_id"] for t in everyone} == {admin.pk, alice.pk}


def test_get_self_and_someone_elses_token(admin, alice):
    secret = make_token(alice)
    client = client_with(secret)
    me = client.get("/api/v4/personal_access_tokens/self").json()
    assert me["user_id"] == alice.pk and me["active"] is True
    admin_token = PersonalAccessToken.objects.create(user=admin, name="a", token_digest="x" * 64)
    assert client.get(f"/api/v4/personal_access_tokens/{admin_token.pk}").status_code == 401
    assert client.get("/api/v4/personal_access_tokens/999999").status_code == 401
    assert client_with(make_token(admin)).get("/api/v4/personal_access_tokens/999999").status_code == 404


def test_rotate_self_revokes_the_old_token(alice):
    secret = make_token(alice)
    response = client_with(secret).post("/api/v4/personal_access_tokens/self/rotate")
    assert response.status_code == 200, response.content
    new = response.json()
    assert new["token"].startswith("glpat-") and new["token"] != secret
    assert new["expires_at"] == (timezone.now().date() + dt.timedelta(days=7)).isoformat()
    old = client_with(secret).get("/api/v4/user")
    assert old.status_code == 401 and "revoked" in old.json()["error_description"]
    assert client_with(new["token"]).get("/api/v4/user").status_code == 200


def test_rotating_a_rotated_token_revokes_the_whole_family(admin, alice):
    make_token(alice)
    first = alice.personal_access_tokens.get()
    admin_client = client_with(make_token(admin))
    second = admin_client.post(f"/api/v4/personal_access_tokens/{first.pk}/rotate").json()
    replay = admin_client.post(f"/api/v4/personal_access_tokens/{first.pk}/rotate")
    assert replay.status_code == 400
    assert PersonalAccessToken.objects.get(pk=second["id"]).revoked is True
    assert client_with(second["token"]).get("/api/v4/user").status_code == 401


def test_self_rotate_scope_rotates_only_itself(alice):
    secret = make_token(alice, ["self_rotate"])
    other = alice.personal_access_tokens.get()
    client = client_with(secret)
    assert client.post(f"/api/v4/personal_access_tokens/{other.pk}/rotate").status_code == 403
    assert client.get("/api/v4/personal_access_tokens/self").status_code == 403
    assert client.post("/api/v4/personal_access_tokens/self/rotate").status_code == 200


def test_read_api_token_cannot_rotate_itself(alice):
    response = client_with(make_token(alice, ["read_api"])).post("/api/v4/personal_access_tokens/self/rotate")
    assert response.status_code == 403


def test_revoke_self_then_the_token_is_refused(alice):
    secret = make_token(alice)
    assert client_with(secret).delete("/api/v4/personal_access_tokens/self").status_code == 204
    assert client_with(secret).get("/api/v4/user").status_code == 401


def test_revoking_twice_is_a_400(admin, alice):
    make_token(alice)
    token = alice.personal_access_tokens.get()
    client = client_with(make_token(admin))
    assert client.delete(f"/api/v4/personal_access_tokens/{token.pk}").status_code == 204
    assert client.delete(f"/api/v4/personal_access_tokens/{token.pk}").status_code == 400


def test_expired_token_is_refused(alice):
    secret = make_token(alice, expires_at=timezone.now().date() - dt.timedelta(days=1))
    response = client_with(secret).get("/api/v4/user")
    assert response.status_code == 401 and "expired" in response.json()["error_description"]


def test_command_prints_only_the_secret(alice, capsys):
    call_command("create_personal_access_token", "alice", "--name", "ci", "--scopes", "api,read_registry")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("glpat-")
    token = alice.personal_access_tokens.get()
    assert token.scopes == ["api", "read_registry"] and token.token_digest == tokens.digest(out.strip())


@pytest.mark.parametrize(
    "args",
    [
        ["nobody", "--name", "x", "--scopes", "api"],
        ["alice", "--name", "x", "--scopes", "api,root"],
        ["alice", "--name", "x", "--scopes", "api", "--expires-at", "31/12/2030"],
        ["alice", "--name", "x", "--scopes", "api", "--expires-at", "2001-01-01"],
    ],
)
def test_command_refuses_bad_input_with_one_line(alice, args):
    with pytest.raises(CommandError) as excinfo:
        call_command("create_personal_access_token", *args)
    assert "\n" not in str(excinfo.value)
    assert not alice.personal_access_tokens.exists()
