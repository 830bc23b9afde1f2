"""Fixtures for the project API tests: a DRF client signed in as any user."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests_support.factories import make_token


@pytest.fixture
def client_as(db):
    """``client_as(user, scopes=["api"])`` -> an APIClient sending that user's new token;
    ``client_as(None)`` -> an anonymous client."""

    def build(user, scopes=None):
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_PRIVATE_TOKEN=make_token(user, scopes or ["api"]))
        return client

    return build


@pytest.fixture
def gl_as(transactional_db, live_server, gitlab_client):
    """``gl_as(user)`` -> the real python-gitlab client, signed in as ``user`` (a new
    token) on a live server."""

    def build(user):
        client = gitlab_client(live_server.url, make_token(user))
        client.auth()
        return client

    return build


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Test users get passwords; the production hasher would make each one cost ~0.5 s.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
