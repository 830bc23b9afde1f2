from __future__ import annotations

import pytest

from gitlab_core import tokens
from projects.models import DeployToken

pytestmark = pytest.mark.django_db


def url(world, suffix=""):
    return f"/api/v4/projects/{world['project'].pk}/deploy_tokens{suffix}"


def test_maintainer_creates_lists_gets_and_deletes_a_deploy_token(world, client_as):
    client = client_as(world["users"]["maintainer"])
    response = client.post(
        url(world),
        {"name": "ci", "scopes": ["read_registry", "write_registry"], "expires_at": "2030-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("gldt-") and body["username"] == f"gitlab+deploy-token-{body['id']}"
    assert body["expires_at"] == "2030-01-01T00:00:00.000Z" and body["expired"] is False
    assert DeployToken.objects.get(pk=body["id"]).token_digest == tokens.digest(body["token"])
    listed = client.get(url(world)).json()
    assert [t["id"] for t in listed] == [body["id"]] and "token" not in listed[0]
    assert client.get(url(world, f"/{body['id']}")).json()["name"] == "ci"
    assert client.delete(url(world, f"/{body['id']}")).status_code == 204
    response = client.get(url(world, f"/{body['id']}"))
    assert response.status_code == 404 and response.json() == {"message": "404 Not found"}
    assert client.get(url(world)).json() == []


def test_custom_username_is_unique_per_project(world, client_as):
    client = client_as(world["users"]["owner"])
    data = {"name": "a", "scopes": ["read_registry"], "username": "puller"}
    assert client.post(url(world), data, format="json").json()["username"] == "puller"
    assert client.post(url(world), data, format="json").status_code == 400
    assert DeployToken.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "body"),
    [
        ({}, {"error": "name is missing, scopes is missing"}),
        ({"name": "x", "scopes": ["api"]}, {"error": "scopes does not have a valid value"}),
        ({"name": "x", "scopes": []}, {"message": "Scopes can't be blank"}),
        ({"name": "x", "scopes": ["read_registry"], "expires_at": "soon"}, {"error": "expires_at is invalid"}),
        ({"name": "x", "scopes": ["read_registry"], "username": "has space"}, None),
        ({"name": "x" * 300, "scopes": ["read_registry"]}, {"error": "name is invalid"}),
    ],
)
def test_bad_deploy_token_requests_create_nothing(world, client_as, data, body):
    response = client_as(world["users"]["owner"]).post(url(world), data, format="json")
    assert response.status_code == 400, response.content
    if body is not None:
        assert response.json() == body
    assert not DeployToken.objects.exists()


def test_developer_gets_403_and_outsider_404(world, client_as):
    assert client_as(world["users"]["developer"]).get(url(world)).status_code == 403
    assert client_as(world["users"]["outsider"]).get(url(world)).status_code == 404
