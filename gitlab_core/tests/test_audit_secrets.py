"""No token secret, nor its digest, ever reaches an audit event."""

from __future__ import annotations

import json
import re

import pytest
from django.forms.models import model_to_dict
from rest_framework.test import APIClient

from gitlab_core import tokens
from gitlab_core.models import AuditEvent, PersonalAccessToken
from projects.models import DeployToken
from tests_support.factories import make_token, make_user

SECRET = re.compile(r"(glpat|gldt)-[A-Za-z0-9_-]{20,}")


def api(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=secret)
    return client


def test_no_secret_or_digest_appears_in_any_audit_row(client, world):
    root = make_user("root", admin=True)
    root_api = api(make_token(root))
    owner = world["users"]["owner"]
    project = world["project"]
    secrets = []

    # Personal access tokens: created by an admin, rotated by their owner, revoked.
    created = root_api.post(
        f"/api/v4/users/{owner.pk}/personal_access_tokens", {"name": "ci", "scopes": ["api"]}, format="json"
    ).json()
    secrets.append(created["token"])
    rotated = api(created["token"]).post("/api/v4/personal_access_tokens/self/rotate").json()
    secrets.append(rotated["token"])
    rotated_again = root_api.post(f"/api/v4/personal_access_tokens/{rotated['id']}/rotate").json()
    secrets.append(rotated_again["token"])
    assert api(rotated_again["token"]).delete("/api/v4/personal_access_tokens/self").status_code == 204
    # Rotating a revoked token revokes its whole family.
    assert root_api.post(f"/api/v4/personal_access_tokens/{created['id']}/rotate").status_code == 400
    # A name that holds a secret (pasted by mistake).
    named = root_api.post(
        f"/api/v4/users/{owner.pk}/personal_access_tokens",
        {"name": f"copy {secrets[0]}", "scopes": ["read_api"]},
        format="json",
    ).json()
    secrets.append(named["token"])

    # Deploy tokens, through the API and the admin.
    deploy = root_api.post(
        f"/api/v4/projects/{project.pk}/deploy_tokens", {"name": "pull", "scopes": ["read_registry"]}, format="json"
    ).json()
    secrets.append(deploy["token"])
    root_api.delete(f"/api/v4/projects/{project.pk}/deploy_tokens/{deploy['id']}")
    client.force_login(root)
    page = client.post(
        "/admin/projects/deploytoken/add/",
        {"project": project.pk, "name": "push", "username": "", "scopes": ["write_registry"]},
    ).content.decode()
    secrets.append(SECRET.search(page).group(0))
    page = client.post(
        "/admin/gitlab_core/personalaccesstoken/add/", {"user": owner.pk, "name": "admin-made", "scopes": ["api"]}
    ).content.decode()
    secrets.append(SECRET.search(page).group(0))
    client.post(
        "/admin/gitlab_core/personalaccesstoken/",
        {"action": "revoke_tokens", "_selected_action": list(PersonalAccessToken.objects.values_list("pk", flat=True))},
    )
    client.post(
        "/admin/projects/deploytoken/",
        {"action": "revoke_deploy_tokens", "_selected_action": list(DeployToken.objects.values_list("pk", flat=True))},
    )

    assert len(set(secrets)) == 7
    digests = [tokens.digest(secret) for secret in secrets]
    rows = [json.dumps(model_to_dict(event), default=str) for event in AuditEvent.objects.all()]
    names = {event.event_name for event in AuditEvent.objects.all()}
    assert {
        "personal_access_token_created",
        "personal_access_token_rotated",
        "personal_access_token_revoked",
        "personal_access_token_family_revoked",
        "deploy_token_created",
        "deploy_token_destroyed",
        "deploy_token_revoked",
    } <= names
    for row in rows:
        for secret in [*secrets, *digests]:
            assert secret not in row
        # Nor any other string shaped like one of our tokens.
        assert not SECRET.search(row), row


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
