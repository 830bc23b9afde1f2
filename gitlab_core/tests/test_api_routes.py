"""Unknown ``/api/v4`` paths answer GitLab's 404 JSON for every method; a known path with
a method it does not have answers GitLab's 405 JSON; no ``/api/v4`` answer is an HTML page.

A ``POST``, ``PUT`` or ``DELETE`` to a path that did not exist used to answer Django's
CSRF failure page (403, HTML): the catch-all view was not exempt from the check that only
cookie-authenticated pages need. The client here enforces CSRF checks as a browser's
session would be checked.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests_support.factories import make_token
from tests_support.wsgi import call_wsgi

METHODS = ("get", "post", "put", "delete", "patch")
UNKNOWN = ("/api/v4/nope", "/api/v4/", "/api/v4/projects/1/nope", "/api/v4/users/1/x/y", "/api/v4/projects/")
# Known routes and a method each does not have.
WRONG_METHODS = [
    ("patch", "/api/v4/projects"),
    ("delete", "/api/v4/groups"),
    ("put", "/api/v4/user"),
    ("post", "/api/v4/projects/1/members/all"),
    ("patch", "/api/v4/application/settings"),
    ("post", "/api/v4/registry/repositories/1"),
    ("put", "/api/v4/projects/1/registry/repositories"),
]


@pytest.fixture
def csrf_client(db, admin):
    """A client with a signed-in admin session that enforces CSRF, plus an API token."""
    client = Client(enforce_csrf_checks=True, HTTP_PRIVATE_TOKEN=make_token(admin))
    client.force_login(admin)
    return client


def _send(client, method: str, path: str):
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, data=b"{}", content_type="application/json")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", UNKNOWN)
def test_unknown_paths_answer_gitlabs_404_for_every_method(csrf_client, method, path):
    response = _send(csrf_client, method, path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "404 Not Found"}


@pytest.mark.parametrize("method", METHODS)
def test_unknown_paths_answer_404_anonymously_too(db, method):
    response = getattr(Client(enforce_csrf_checks=True), method)("/api/v4/nowhere")
    assert (response.status_code, response.json()) == (404, {"error": "404 Not Found"})


@pytest.mark.parametrize(("method", "path"), WRONG_METHODS)
def test_known_paths_with_a_wrong_method_answer_gitlabs_405(csrf_client, method, path):
    response = _send(csrf_client, method, path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "405 Method Not Allowed"}


@pytest.mark.parametrize("method", ("GET", "PUT", "DELETE", "PATCH"))
def test_the_event_receiver_answers_405_in_json(db, method):
    response = call_wsgi(method, "/api/v4/container_registry_event/events")
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "405 Method Not Allowed"}


def test_a_host_django_refuses_is_a_json_400_under_the_api(db):
    response = call_wsgi("GET", "/api/v4/projects", HTTP_HOST="not-allowed.example")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "400 Bad request"}


def test_the_admin_keeps_djangos_own_pages(db):
    # The JSON error pages are for the API only.
    response = call_wsgi("GET", "/admin/login/", HTTP_HOST="not-allowed.example")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
