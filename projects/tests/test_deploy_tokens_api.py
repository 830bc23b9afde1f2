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


# --- group deploy tokens and the administrators' list -------------------------------------


def group_url(world, suffix=""):
    return f"/api/v4/groups/{world['acme'].pk}/deploy_tokens{suffix}"


def test_group_owner_creates_lists_gets_and_deletes_a_group_deploy_token(world, client_as):
    client = client_as(world["users"]["owner"])
    response = client.post(group_url(world), {"name": "fleet", "scopes": "read_registry,write_registry"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["token"].startswith("gldt-") and body["scopes"] == ["read_registry", "write_registry"]
    token = DeployToken.objects.get(pk=body["id"])
    assert token.deploy_token_type == DeployToken.Type.GROUP and token.group == world["acme"]
    assert [t["id"] for t in client.get("/api/v4/groups/acme/deploy_tokens").json()] == [body["id"]]
    assert client.get(group_url(world, f"/{body['id']}")).json()["name"] == "fleet"
    # Not a token of the project, nor of the subgroup.
    assert client.get(url(world, f"/{body['id']}")).status_code == 404
    assert client.get(f"/api/v4/groups/{world['platform'].pk}/deploy_tokens/{body['id']}").status_code == 404
    assert client.delete(group_url(world, f"/{body['id']}")).status_code == 204
    assert client.get(group_url(world)).json() == []


def test_group_deploy_tokens_are_for_group_owners(world, client_as):
    assert (
        client_as(world["users"]["maintainer"]).get(f"/api/v4/groups/{world['platform'].pk}/deploy_tokens").status_code
        == 403
    )
    # The outsider cannot see the private group at all.
    response = client_as(world["users"]["outsider"]).get(group_url(world))
    assert response.status_code == 404 and response.json() == {"message": "404 Group Not Found"}
    assert client_as(None).get(group_url(world)).status_code == 401


def test_group_deploy_token_username_is_unique_in_its_group_only(world, client_as):
    client = client_as(world["users"]["owner"])
    data = {"name": "a", "scopes": ["read_registry"], "username": "puller"}
    assert client.post(group_url(world), data, format="json").status_code == 201
    assert client.post(group_url(world), data, format="json").status_code == 400
    assert client.post(url(world), data, format="json").status_code == 201


def test_admins_list_every_deploy_token_and_others_are_refused(world, client_as, admin):
    owner = client_as(world["users"]["owner"])
    project_token = owner.post(url(world), {"name": "p", "scopes": ["read_registry"]}, format="json").json()
    group_token = owner.post(group_url(world), {"name": "g", "scopes": ["read_registry"]}, format="json").json()
    DeployToken.objects.filter(pk=project_token["id"]).update(revoked=True)
    listed = client_as(admin).get("/api/v4/deploy_tokens")
    assert listed.status_code == 200 and listed["X-Total"] == "2"
    assert [t["id"] for t in listed.json()] == [project_token["id"], group_token["id"]]
    assert [t["id"] for t in client_as(admin).get("/api/v4/deploy_tokens?active=true").json()] == [group_token["id"]]
    assert owner.get("/api/v4/deploy_tokens").status_code == 403
    assert client_as(None).get("/api/v4/deploy_tokens").status_code == 401
