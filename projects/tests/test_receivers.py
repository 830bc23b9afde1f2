"""What ``projects`` does when ``gitlab_core`` creates a user."""

from __future__ import annotations

import pytest

from gitlab_core import services as user_services
from gitlab_core.errors import ServiceError
from gitlab_core.models import User
from projects.models import Namespace

pytestmark = pytest.mark.django_db


def test_a_created_user_gets_a_personal_namespace_named_after_it():
    user = user_services.create_user(username="Bob", email="bob@x.test", name="Bob B", password=None)

    namespace = Namespace.objects.get(owner=user)
    assert (namespace.kind, namespace.path, namespace.name) == (Namespace.Kind.USER, "Bob", "Bob B")


def test_a_group_path_makes_the_username_taken():
    Namespace.objects.create(kind=Namespace.Kind.GROUP, name="Acme", path="acme")

    assert user_services.username_taken("ACME")
    assert not user_services.username_taken("other")


def test_a_group_created_after_the_check_rolls_the_user_back(monkeypatch):
    # The race: the group takes the path between the check and the namespace INSERT.
    Namespace.objects.create(kind=Namespace.Kind.GROUP, name="Acme", path="acme")
    monkeypatch.setattr(user_services, "username_taken", lambda username: False)

    with pytest.raises(ServiceError) as raised:
        user_services.create_user(username="acme", email="a@x.test", name="A", password=None)

    assert (raised.value.status, raised.value.body) == (409, {"message": "Username has already been taken"})
    assert not User.objects.filter(username="acme").exists()
