"""``createsuperuser --noinput`` with the standard DJANGO_SUPERUSER_* variables."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from gitlab_core.models import User
from tests_support.factories import make_token


@pytest.fixture
def superuser_env(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_USERNAME", "root")
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "root@example.test")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "root-password-1")


def test_createsuperuser_noinput_creates_an_administrator_who_can_sign_in(db, client, superuser_env):
    call_command("createsuperuser", "--noinput", verbosity=0)

    root = User.objects.get(username="root")
    assert root.is_admin and root.is_staff and root.is_active
    assert root.email == "root@example.test"
    assert client.login(username="root", password="root-password-1")
    assert client.get("/admin/").status_code == 200


def test_the_new_administrator_can_use_the_api(db, client, superuser_env):
    call_command("createsuperuser", "--noinput", verbosity=0)
    secret = make_token(User.objects.get(username="root"), ["api"])

    response = client.get("/api/v4/user", HTTP_PRIVATE_TOKEN=secret)

    assert response.status_code == 200
    assert response.json()["username"] == "root"
    assert response.json()["is_admin"] is True


def test_createsuperuser_refuses_a_taken_username(db, superuser_env):
    call_command("createsuperuser", "--noinput", verbosity=0)

    with pytest.raises(CommandError, match="already taken"):
        call_command("createsuperuser", "--noinput", verbosity=0)
    assert User.objects.filter(username="root").count() == 1
