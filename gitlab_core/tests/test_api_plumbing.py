"""Cross-cutting API behaviour: pagination, bodies, methods, unknown routes."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from projects.models import Project
from tests_support.factories import make_group, make_project, make_token, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Test users get passwords; the production hasher would make each one cost ~0.5 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def client(admin):
    api = APIClient()
    api.credentials(HTTP_PRIVATE_TOKEN=make_token(admin))
    return api


@pytest.fixture
def five_groups(db):
    return [make_group(f"g{i}", visibility="public") for i in range(5)]


def test_pagination_headers_and_links(client, five_groups):
    response = client.get("/api/v4/groups", {"per_page": 2, "page": 2, "search": "g"})
    assert [g["path"] for g in response.json()] == ["g2", "g3"]
    headers = {
        k: response[k] for k in ("X-Page", "X-Per-Page", "X-Total", "X-Total-Pages", "X-Next-Page", "X-Prev-Page")
    }
    assert headers == {
        "X-Page": "2",
        "X-Per-Page": "2",
        "X-Total": "5",
        "X-Total-Pages": "3",
        "X-Next-Page": "3",
        "X-Prev-Page": "1",
    }
    links = response["Link"]
    assert '<http://testserver/api/v4/groups?search=g&page=3&per_page=2>; rel="next"' in links
    assert 'page=1&per_page=2>; rel="prev"' in links and 'page=3&per_page=2>; rel="last"' in links


def test_per_page_is_clamped_and_pages_past_the_end_are_empty(client, five_groups):
    assert client.get("/api/v4/groups", {"per_page": 1000})["X-Per-Page"] == "100"
    response = client.get("/api/v4/groups", {"page": 10**25})
    assert response.status_code == 200 and response.json() == []
    assert response["X-Total-Pages"] == "1" and response["X-Next-Page"] == ""


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"page": 0}, "page does not have a valid value"),
        ({"page": -1}, "page does not have a valid value"),
        ({"page": "a"}, "page is invalid"),
        ({"per_page": 0}, "per_page does not have a valid value"),
        ({"per_page": -1}, "per_page does not have a valid value"),
        ({"per_page": "1.5"}, "per_page is invalid"),
        ({"page": "9" * 5000}, "page is invalid"),
        ({"page": 0, "per_page": "x"}, "page does not have a valid value, per_page is invalid"),
    ],
)
def test_an_invalid_page_or_per_page_is_gitlabs_400(client, query, error):
    response = client.get("/api/v4/groups", query)
    assert response.status_code == 400 and response.json() == {"error": error}


def test_empty_list_still_has_headers(client):
    response = client.get("/api/v4/groups")
    assert response.json() == [] and response["X-Total"] == "0" and response["X-Total-Pages"] == "1"
    assert 'rel="first"' in response["Link"]


def test_malformed_json_is_a_400_and_writes_nothing(client):
    response = client.post("/api/v4/groups", "{not json", content_type="application/json")
    assert response.status_code == 400 and "error" in response.json()
    response = client.post("/api/v4/groups", "[1, 2]", content_type="application/json")
    assert response.status_code == 400


def test_json_content_type_with_an_empty_body_is_fine_on_get_and_delete(client):
    group = make_group("g", visibility="public")
    project = make_project(group, "p")
    assert client.get(f"/api/v4/groups/{group.pk}", content_type="application/json").status_code == 200
    assert client.delete(f"/api/v4/projects/{project.pk}", content_type="application/json").status_code == 202
    assert not Project.objects.filter(pk=project.pk).exists()


def test_head_answers_like_get_without_a_body(client, five_groups):
    response = client.head("/api/v4/groups")
    assert response.status_code == 200 and response.content == b"" and response["X-Total"] == "5"


def test_unknown_route_and_wrong_method(client):
    response = client.get("/api/v4/nothing/here")
    assert response.status_code == 404 and response.json() == {"error": "404 Not Found"}
    response = client.patch("/api/v4/groups", {}, format="json")
    assert response.status_code == 405 and response.json() == {"message": "405 Method Not Allowed"}


def test_post_is_never_redirected_for_a_trailing_slash(client):
    response = client.post("/api/v4/groups/", {"name": "x", "path": "x"}, format="json")
    assert response.status_code == 404


def test_form_body_with_nested_policy_attributes(client):
    user = make_user("alice")
    api = APIClient()
    api.credentials(HTTP_PRIVATE_TOKEN=make_token(user))
    response = api.post(
        "/api/v4/projects",
        "path=tool&container_expiration_policy_attributes[cadence]=7d&container_expiration_policy_attributes[enabled]=true",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 201, response.content
    policy = response.json()["container_expiration_policy"]
    assert (policy["cadence"], policy["enabled"]) == ("7d", True)


def test_text_with_nul_or_lone_surrogates_is_refused(client):
    response = client.post("/api/v4/groups", '{"name": "a\\u0000b", "path": "ab"}', content_type="application/json")
    assert response.status_code == 400 and response.json() == {"error": "name is invalid"}
    response = client.post("/api/v4/groups", '{"name": "a\\ud800", "path": "ab"}', content_type="application/json")
    assert response.status_code == 400
    assert client.get("/api/v4/projects/a%00b").status_code == 404


def test_deeply_nested_or_oversized_bodies_are_client_errors(client, settings):
    response = client.post("/api/v4/groups", "[" * 100000, content_type="application/json")
    assert response.status_code == 400 and "error" in response.json()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = client.post("/api/v4/groups", {"name": "x" * 5000, "path": "x"}, format="json")
    assert response.status_code == 413 and "error" in response.json()
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    body = "&".join(f"f{i}=1" for i in range(50))
    response = client.post("/api/v4/groups", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "error" in response.json()


@pytest.fixture
def nested_project(admin):
    platform = make_group("platform", parent=make_group("acme"))
    return make_project(platform, "svc", creator=admin)


def test_gunicorn_raw_uri_keeps_the_encoded_slashes_of_a_project_path(client, nested_project):
    # gunicorn decodes %2F in PATH_INFO and gives the undecoded path in RAW_URI.
    for suffix in ("", "/members/all", "/deploy_tokens", "/registry/repositories"):
        response = client.get(
            f"/api/v4/projects/acme/platform/svc{suffix}", RAW_URI=f"/api/v4/projects/acme%2Fplatform%2Fsvc{suffix}"
        )
        assert response.status_code == 200, suffix
    assert (
        client.get("/api/v4/projects/acme/platform/svc", RAW_URI="/api/v4/projects/acme%2Fplatform%2Fsvc").json()["id"]
        == nested_project.pk
    )


def test_uwsgi_request_uri_with_a_query_string_works_too(client, nested_project):
    response = client.get("/api/v4/groups/acme/platform", {"x": "1"}, REQUEST_URI="/api/v4/groups/acme%2Fplatform?x=1")
    assert response.status_code == 200
    assert response.json()["full_path"] == "acme/platform"


def test_a_doubly_encoded_path_is_decoded_once_and_not_found(client, nested_project):
    response = client.get(
        "/api/v4/projects/acme%2Fplatform%2Fsvc", RAW_URI="/api/v4/projects/acme%252Fplatform%252Fsvc"
    )
    assert response.status_code == 404
    assert response.json() == {"message": "404 Project Not Found"}


def test_a_namespace_id_that_no_database_can_store_is_a_400(client):
    response = client.post(
        "/api/v4/projects", data='{"name": "okproj", "namespace_id": "\\ud800"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert Project.objects.count() == 0
