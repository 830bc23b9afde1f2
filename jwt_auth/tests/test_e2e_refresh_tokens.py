"""A real client on refresh tokens alone: skopeo, with an auth file that holds only an
``identitytoken``, pushes and pulls through the real registry, the realm served by
granian (skopeo sends its token form chunked, without ``Content-Length``)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess

import pytest
import requests

from gitlab_core.models import PersonalAccessToken
from jwt_auth.models import RefreshToken
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import build_image, create_registry
from tests_support.registry_fixtures import NOTIFICATION_PATH, _require_tools
from tests_support.web_server import granian

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _skopeo_with_auth_file(auth_file, *args) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_AUTH_FILE"}
    env["HOME"] = str(auth_file.parent)
    return subprocess.run(
        ["skopeo", "--insecure-policy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_skopeo_pushes_and_pulls_with_only_a_refresh_token(tmp_path, settings, registry_keys):
    _require_tools()
    owner = make_user("owner")
    make_project(make_group("acme", owner=owner), "svc", creator=owner)
    secret = make_token(owner, scopes=["read_registry", "write_registry"])
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_NOTIFICATION_SECRET = secrets.token_urlsafe(24)

    (tmp_path / "web").mkdir()
    with granian(tmp_path / "web") as web:
        registry = create_registry(
            work_dir=tmp_path / "registry",
            realm=f"{web.base}/jwt/auth",
            issuer=settings.REGISTRY_ISSUER,
            cert_bundle=registry_keys.cert_path,
            notification_url=f"{web.base}{NOTIFICATION_PATH}",
            notification_secret=settings.REGISTRY_NOTIFICATION_SECRET,
        )
        registry.start()
        try:
            login = requests.get(
                f"{web.base}/jwt/auth",
                params={"service": "container_registry", "offline_token": "true", "client_id": "docker"},
                auth=("owner", secret),
                timeout=10,
            )
            assert login.status_code == 200, login.text
            refresh_token = login.json()["refresh_token"]

            # skopeo 1.9 uses an identity token only with "auth" present: USERNAME and an
            # empty password. Nothing in the file is a password or a personal access token.
            auth_file = tmp_path / "auth" / "auth.json"
            auth_file.parent.mkdir()
            entry = {"auth": base64.b64encode(b"owner:").decode(), "identitytoken": refresh_token}
            auth_file.write_text(json.dumps({"auths": {registry.host_port: entry}}))
            assert secret not in auth_file.read_text()
            common = [f"--authfile={auth_file}"]

            image = build_image(tmp_path / "oci", size=2048, seed="refresh")
            pushed = _skopeo_with_auth_file(
                auth_file, "copy", *common, "--dest-tls-verify=false", image, registry.ref("acme/svc/app")
            )
            assert pushed.returncode == 0, pushed.stderr
            pulled = _skopeo_with_auth_file(
                auth_file, "inspect", *common, "--tls-verify=false", registry.ref("acme/svc/app")
            )
            assert pulled.returncode == 0, pulled.stderr
            assert json.loads(pulled.stdout)["Name"].endswith("acme/svc/app")
            # The registry's tokens came from POST grant_type=refresh_token.
            assert RefreshToken.objects.get().last_used_at is not None

            # Revoking the personal access token ends the refresh token with it.
            PersonalAccessToken.objects.update(revoked=True)
            refused = _skopeo_with_auth_file(
                auth_file, "inspect", *common, "--tls-verify=false", registry.ref("acme/svc/app")
            )
            assert refused.returncode != 0
            assert "401" in refused.stderr or "unauthorized" in refused.stderr.lower()
        finally:
            registry.stop()
