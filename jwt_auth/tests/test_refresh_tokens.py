"""Refresh tokens: ``offline_token=true`` on ``GET /jwt/auth`` and the OAuth2 form of
``POST /jwt/auth`` (``grant_type=password`` and ``grant_type=refresh_token``), both
doors; what ends a refresh token; the user's API; pruning."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode

import jwt
import pytest
from django.utils import timezone

from gitlab_core.models import ApplicationSettings, PersonalAccessToken, User
from jwt_auth.models import RefreshToken
from projects.models import AccessLevel, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.wsgi import call_wsgi
from workers.refresh_tokens import prune_refresh_tokens

pytestmark = pytest.mark.django_db

SVC = "acme/svc"


@pytest.fixture
def world():
    owner = make_user("owner", password="a long password")
    group = make_group("acme", owner=owner)
    project = make_project(group, "svc", creator=owner)
    reader = make_user("reader", password="reader password")
    ProjectMember.objects.create(project=project, user=reader, access_level=AccessLevel.REPORTER)
    return {"owner": owner, "reader": reader, "project": project}


@pytest.fixture(params=["django-view", "wsgi-door"])
def door(request, client):
    """POSTs a form and GETs a query through one of the realm's two doors."""

    class Door:
        def post(self, fields: dict | list, *, body: bytes | None = None, **environ):
            data = body if body is not None else urlencode(fields, doseq=True).encode()
            content_type = "application/x-www-form-urlencoded"
            if request.param == "wsgi-door":
                return call_wsgi("POST", "/jwt/auth", data, CONTENT_TYPE=content_type, **environ)
            return client.post("/jwt/auth", data, content_type=content_type, **environ)

        def get(self, query: str, **environ):
            if request.param == "wsgi-door":
                return call_wsgi("GET", "/jwt/auth", QUERY_STRING=query, **environ)
            return client.get(f"/jwt/auth?{query}", **environ)

    return Door()


def _basic(login, secret) -> dict:
    import base64

    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()}


def _claims(response, key) -> dict:
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    return jwt.decode(
        body["access_token"],
        key.public_key,
        algorithms=["RS256"],
        audience="container_registry",
        issuer="gitlab-issuer",
    )


def _access(response, key) -> dict[str, list[str]]:
    return {entry["name"]: entry["actions"] for entry in _claims(response, key)["access"]}


def _offline_login(door, login, secret) -> str:
    response = door.get("service=container_registry&offline_token=true&client_id=docker", **_basic(login, secret))
    assert response.status_code == 200, response.content
    return json.loads(response.content)["refresh_token"]


def _refresh(door, refresh_token, *scopes, **extra):
    return door.post(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "service": "container_registry",
            "client_id": "containers/image",
            "scope": list(scopes),
            **extra,
        }
    )


def test_offline_login_returns_a_refresh_token_that_grants_what_the_credential_grants(
    door, world, signing_key_settings
):
    secret = make_token(world["owner"], scopes=["read_registry", "write_registry"])
    refresh_token = _offline_login(door, "owner", secret)
    assert refresh_token.startswith("glrrt-")

    response = _refresh(door, refresh_token, f"repository:{SVC}:pull,push")
    body = json.loads(response.content)
    assert _access(response, signing_key_settings) == {SVC: ["pull", "push"]}
    assert body["scope"] == f"repository:{SVC}:pull,push"
    assert "refresh_token" not in body
    assert _claims(response, signing_key_settings)["sub"] == "owner"
    # Only a digest is stored.
    row = RefreshToken.objects.get()
    assert row.client_id == "docker" and row.user == world["owner"]
    assert refresh_token not in json.dumps(list(RefreshToken.objects.values()), default=str)


def test_a_login_without_offline_token_gets_no_refresh_token(door, world):
    secret = make_token(world["owner"])
    response = door.get("service=container_registry", **_basic("owner", secret))
    assert "refresh_token" not in json.loads(response.content)
    assert not RefreshToken.objects.exists()


def test_a_refresh_token_never_grants_more_than_its_credential(door, world, signing_key_settings):
    # Downscoping: read_registry only, and a Reporter: pull, never push or delete.
    refresh_token = _offline_login(door, "owner", make_token(world["owner"], scopes=["read_registry"]))
    assert _access(_refresh(door, refresh_token, f"repository:{SVC}:pull,push,delete"), signing_key_settings) == {
        SVC: ["pull"]
    }
    reader_token = _offline_login(door, "reader", "reader password")
    assert _access(_refresh(door, reader_token, f"repository:{SVC}:pull,push"), signing_key_settings) == {SVC: ["pull"]}


def test_password_grant_with_offline_access(door, world, signing_key_settings):
    response = door.post(
        {
            "grant_type": "password",
            "username": "reader",
            "password": "reader password",
            "service": "container_registry",
            "client_id": "containers/image",
            "access_type": "offline",
            "scope": f"repository:{SVC}:pull",
        }
    )
    assert _access(response, signing_key_settings) == {SVC: ["pull"]}
    refresh_token = json.loads(response.content)["refresh_token"]
    assert _access(_refresh(door, refresh_token, f"repository:{SVC}:pull"), signing_key_settings) == {SVC: ["pull"]}

    wrong = door.post(
        {"grant_type": "password", "username": "reader", "password": "nope", "service": "container_registry"}
    )
    assert wrong.status_code == 401


@pytest.mark.parametrize(
    "end",
    ["token revoked", "token expired", "user blocked", "user deleted", "password changed", "refresh token expired"],
)
def test_what_ends_a_refresh_token(door, world, end):
    owner = world["owner"]
    if end == "password changed":
        refresh_token = _offline_login(door, "owner", "a long password")
    else:
        refresh_token = _offline_login(door, "owner", make_token(owner, scopes=["read_registry"]))
    assert _refresh(door, refresh_token, f"repository:{SVC}:pull").status_code == 200

    if end == "token revoked":
        PersonalAccessToken.objects.update(revoked=True)
    elif end == "token expired":
        PersonalAccessToken.objects.update(expires_at=timezone.now().date())
    elif end == "user blocked":
        User.objects.filter(pk=owner.pk).update(state=User.State.BLOCKED)
    elif end == "user deleted":
        owner.delete()
    elif end == "password changed":
        owner.set_password("another long password")
        owner.save()
    else:
        RefreshToken.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    refused = _refresh(door, refresh_token, f"repository:{SVC}:pull")
    assert refused.status_code == 401
    assert json.loads(refused.content)["errors"][0]["code"] == "UNAUTHORIZED"


def test_deploy_token_refresh_ends_with_its_deploy_token(door, world, make_deploy_token, signing_key_settings):
    token, secret = make_deploy_token(world["project"])
    refresh_token = _offline_login(door, token.username, secret)
    assert _access(_refresh(door, refresh_token, f"repository:{SVC}:pull"), signing_key_settings) == {SVC: ["pull"]}
    token.revoked = True
    token.save()
    assert _refresh(door, refresh_token, f"repository:{SVC}:pull").status_code == 401


def test_ci_jobs_and_anonymous_callers_get_no_refresh_token(door, world, make_ci_job):
    _, job_secret = make_ci_job(world["project"], user=world["owner"])
    job = door.get("service=container_registry&offline_token=true", **_basic("gitlab-ci-token", job_secret))
    assert job.status_code == 200 and "refresh_token" not in json.loads(job.content)
    anonymous = door.get("service=container_registry&offline_token=true&scope=repository:acme/svc:pull")
    assert "refresh_token" not in json.loads(anonymous.content or b"{}")
    assert not RefreshToken.objects.exists()


def test_lifetime_is_an_application_setting(door, world):
    settings_row = ApplicationSettings.current()
    settings_row.container_registry_refresh_token_days = 7
    settings_row.save()
    before = timezone.now()
    _offline_login(door, "owner", make_token(world["owner"]))
    row = RefreshToken.objects.get()
    assert dt.timedelta(days=7) <= row.expires_at - before < dt.timedelta(days=7, minutes=1)

    settings_row.container_registry_refresh_token_days = 0
    settings_row.save()
    response = door.get("service=container_registry&offline_token=true", **_basic("owner", make_token(world["owner"])))
    assert response.status_code == 200 and "refresh_token" not in json.loads(response.content)


def test_bad_refresh_tokens_from_one_address_are_banned_but_valid_ones_still_work(door, world, settings):
    settings.AUTH_BAN_MAX_RETRY = 3
    for _ in range(3):
        assert _refresh(door, "glrrt-guess", f"repository:{SVC}:pull").status_code == 401
    banned = _refresh(door, "glrrt-guess-again", f"repository:{SVC}:pull")
    assert banned.status_code == 403
    assert b"Too many failed authentication attempts" in banned.content
    # Another client behind the same address, with a valid refresh token, is not locked out.
    refresh_token = _offline_login(door, "owner", make_token(world["owner"]))
    assert _refresh(door, refresh_token, f"repository:{SVC}:pull").status_code == 200


def test_a_password_stored_again_under_a_stronger_hash_keeps_its_refresh_tokens(door, world, settings):
    refresh_token = _offline_login(door, "reader", "reader password")
    # Django's next release raises the work factor: the next correct login re-hashes.
    settings.PASSWORD_HASHERS = [
        "tests_support.hashers.FastPBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    old_hash = User.objects.get(username="reader").password
    response = door.get("service=container_registry", **_basic("reader", "reader password"))
    assert response.status_code == 200
    assert User.objects.get(username="reader").password != old_hash
    assert _refresh(door, refresh_token, f"repository:{SVC}:pull").status_code == 200


def test_a_login_longer_than_any_is_refused_without_a_lookup(door, world):
    response = door.post(
        {"grant_type": "password", "username": "u" * 60000, "password": "x", "service": "container_registry"}
    )
    assert response.status_code == 401


def test_the_lifetime_is_bounded(client, world):
    admin_token = make_token(make_user("root", admin=True))
    response = client.put(
        "/api/v4/application/settings",
        {"container_registry_refresh_token_days": 3651},
        content_type="application/json",
        HTTP_PRIVATE_TOKEN=admin_token,
    )
    assert response.status_code == 400
    assert ApplicationSettings.current().container_registry_refresh_token_days == 30


@pytest.mark.parametrize(
    ("fields", "body", "status"),
    [
        ({"grant_type": "client_credentials", "service": "container_registry"}, None, 400),
        ({"grant_type": "refresh_token", "service": "container_registry"}, None, 400),
        ({"grant_type": "password", "username": "owner", "service": "container_registry"}, None, 400),
        ({"grant_type": "refresh_token", "refresh_token": "glrrt-\x00", "service": "container_registry"}, None, 401),
        (
            {"grant_type": "refresh_token", "refresh_token": "glrrt-" + "a" * 5000, "service": "container_registry"},
            None,
            401,
        ),
        (
            {"grant_type": "password", "username": "own\x00er", "password": "x", "service": "container_registry"},
            None,
            401,
        ),
        (None, b"grant_type=password&service=container_registry&username=\xff&password=\xfe", 400),
        (None, b"grant_type=refresh_token&service=container_registry&refresh_token=" + b"a" * 70_000, 400),
        ({"grant_type": "refresh_token", "refresh_token": "x", "service": "dependency_proxy"}, None, 404),
    ],
)
def test_bad_forms_get_a_clear_answer(door, world, fields, body, status):
    response = door.post(fields or {}, body=body)
    assert response.status_code == status, response.content
    if status != 404:
        assert "errors" in json.loads(response.content)


def test_users_list_and_revoke_their_refresh_tokens(door, world, client):
    owner_secret = make_token(world["owner"])
    first = _offline_login(door, "owner", owner_secret)
    _offline_login(door, "owner", owner_secret)
    _offline_login(door, "reader", "reader password")

    listed = client.get("/api/v4/user/registry_refresh_tokens", HTTP_PRIVATE_TOKEN=owner_secret)
    assert listed.status_code == 200
    entries = listed.json()
    assert len(entries) == 2 and {e["credential_type"] for e in entries} == {"personal_access_token"}
    assert first not in listed.content.decode()

    reader_row = RefreshToken.objects.get(user=world["reader"])
    other = client.delete(f"/api/v4/user/registry_refresh_tokens/{reader_row.pk}", HTTP_PRIVATE_TOKEN=owner_secret)
    assert other.status_code == 404
    oldest = min(e["id"] for e in entries)
    assert (
        client.delete(f"/api/v4/user/registry_refresh_tokens/{oldest}", HTTP_PRIVATE_TOKEN=owner_secret).status_code
        == 204
    )
    assert _refresh(door, first, f"repository:{SVC}:pull").status_code == 401
    assert client.get("/api/v4/user/registry_refresh_tokens").status_code == 401


def test_prune_removes_only_expired_refresh_tokens(door, world):
    secret = make_token(world["owner"])
    _offline_login(door, "owner", secret)
    _offline_login(door, "owner", secret)
    RefreshToken.objects.filter(pk=RefreshToken.objects.order_by("id").first().pk).update(
        expires_at=timezone.now() - dt.timedelta(days=1)
    )
    assert prune_refresh_tokens() == 1
    assert RefreshToken.objects.count() == 1


def test_refresh_tokens_per_user_are_bounded(door, world, monkeypatch):
    from jwt_auth import refresh_tokens

    monkeypatch.setattr(refresh_tokens, "MAX_PER_OWNER", 3)
    secret = make_token(world["owner"])
    issued = [_offline_login(door, "owner", secret) for _ in range(5)]
    assert RefreshToken.objects.filter(user=world["owner"]).count() == 3
    assert _refresh(door, issued[0], f"repository:{SVC}:pull").status_code == 401
    assert _refresh(door, issued[-1], f"repository:{SVC}:pull").status_code == 200


def test_admins_see_and_revoke_refresh_tokens_in_the_admin(door, world, client):
    refresh_token = _offline_login(door, "owner", make_token(world["owner"]))
    admin = make_user("root", admin=True)
    client.force_login(admin)
    listing = client.get("/admin/jwt_auth/refreshtoken/")
    assert listing.status_code == 200
    assert b"owner" in listing.content and refresh_token.encode() not in listing.content
    row = RefreshToken.objects.get()
    assert client.get(f"/admin/jwt_auth/refreshtoken/{row.pk}/change/").status_code == 200
    deleted = client.post(f"/admin/jwt_auth/refreshtoken/{row.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert _refresh(door, refresh_token, f"repository:{SVC}:pull").status_code == 401
