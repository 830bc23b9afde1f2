"""Fixtures of the token realm's tests: signing keys, a realm client, credentials."""

from __future__ import annotations

import base64
from pathlib import Path

import jwt
import pytest

from jwt_auth.keys import generate_key_pair, load_key
from projects.models import CiJob, DeployToken, Project
from tests_support.wsgi import call_wsgi


class KeyPair:
    def __init__(self, directory: Path, name: str, algorithm: str = "RS256"):
        self.key_path = directory / f"{name}.key"
        self.cert_path = directory / f"{name}.crt"
        self.kid = generate_key_pair(key_path=self.key_path, cert_path=self.cert_path, algorithm=algorithm)
        self.algorithm = algorithm

    @property
    def public_key(self):
        return load_key(self.key_path, self.cert_path).public_key


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jwt-keys")


@pytest.fixture(scope="session")
def rsa_key(key_dir):
    return KeyPair(key_dir, "signing")


@pytest.fixture(scope="session")
def old_rsa_key(key_dir):
    return KeyPair(key_dir, "old")


@pytest.fixture(autouse=True)
def signing_key_settings(settings, rsa_key):
    settings.REGISTRY_KEY_PATH = str(rsa_key.key_path)
    settings.REGISTRY_CERT_PATH = str(rsa_key.cert_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    return rsa_key


def basic(login: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()


class Realm:
    """Calls ``/jwt/auth`` through Django's test client (``door="django-view"``) or the
    WSGI door production servers take (``"wsgi-door"``), and decodes what it returns."""

    def __init__(self, client, key: KeyPair, door: str = "django-view"):
        self.client = client
        self.key = key
        self.door = door

    def get(self, *scopes: str, creds: tuple[str, str] | None = None, service="container_registry", extra="", **meta):
        parts = []
        if service is not None:
            parts.append(f"service={service}")
        parts += [f"scope={s}" for s in scopes]
        query = "&".join(parts) + extra
        headers = {"HTTP_AUTHORIZATION": basic(*creds)} if creds else {}
        if self.door == "wsgi-door":
            return call_wsgi("GET", "/jwt/auth", QUERY_STRING=query, **headers, **meta)
        return self.client.get(f"/jwt/auth?{query}", **headers, **meta)

    def claims(self, response) -> dict:
        assert response.status_code == 200, response.content
        return jwt.decode(
            response.json()["token"],
            self.key.public_key,
            algorithms=[self.key.algorithm],
            audience="container_registry",
            issuer="gitlab-issuer",
        )

    def access(self, *scopes: str, creds=None) -> dict[str, list[str]]:
        """``{name: granted actions}`` for the scopes; asserts a 200."""
        return {e["name"]: e["actions"] for e in self.claims(self.get(*scopes, creds=creds))["access"]}


@pytest.fixture(params=["django-view", "wsgi-door"])
def realm(request, client, signing_key_settings):
    """Every realm test runs through both doors."""
    return Realm(client, signing_key_settings, request.param)


@pytest.fixture
def make_deploy_token():
    def build(owner, scopes=("read_registry",), **extra):
        """A deploy token of a project, or of a group (a ``Namespace``)."""
        if isinstance(owner, Project):
            extra.update(project=owner, deploy_token_type=DeployToken.Type.PROJECT)
        else:
            extra.update(group=owner, deploy_token_type=DeployToken.Type.GROUP)
        token = DeployToken(name="deploy", scopes=list(scopes), **extra)
        secret = token.set_secret()
        token.save()
        return token, secret

    return build


@pytest.fixture
def make_ci_job():
    def build(project, user=None, status=CiJob.Status.RUNNING):
        job = CiJob(project=project, user=user, status=status)
        secret = job.set_secret()
        job.save()
        return job, secret

    return build


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    # PBKDF2 at Django's default cost takes most of a second per user; the hasher's cost
    # is measured in the benchmark, not here.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _empty_cache(settings):
    # Redis (CI) does not roll back with the test: nothing cached by one test (tag
    # creation times, leases) leaks into the next. Login bans live in a table.
    yield
    if settings.CACHE_URL:
        from django.core.cache import cache

        cache.clear()
