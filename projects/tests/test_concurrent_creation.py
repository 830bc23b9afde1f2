"""Concurrent creations answer a success or GitLab's error, never a 500 (PostgreSQL).

A user made without a personal namespace (``createsuperuser``, say) gets one on their
first ``POST /projects``. Two such requests at once both tried to insert it, and the
second failed with an IntegrityError (a 500).
"""

from __future__ import annotations

import threading

import pytest
import requests
from django.db import connection, connections, transaction

from gitlab_core.models import User
from projects import services
from projects.models import Namespace, Project
from tests_support.factories import make_token

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="real concurrent transactions: PostgreSQL only"
)


def _user_without_namespace(username: str) -> User:
    user = User(username=username, email=f"{username}@example.test", name=username)
    user.set_password("password123")
    user.save()
    return user


def _in_thread(target, errors: list):
    def run():
        try:
            target()
        except Exception as exc:  # noqa: BLE001 -- reported by the test, not swallowed
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_two_first_uses_of_a_personal_namespace_get_the_same_one(transactional_db):
    """Deterministic: the first transaction holds its new row uncommitted while the second
    inserts the same one (and waits on the unique index), then commits."""
    user = _user_without_namespace("late")
    created, second_started, errors, found = threading.Event(), threading.Event(), [], {}

    def first():
        with transaction.atomic():
            found["first"] = services.personal_namespace(user).pk
            created.set()
            second_started.wait(5)
            # Give the second INSERT time to block on ours before committing.
            threading.Event().wait(0.5)

    def second():
        created.wait(5)
        second_started.set()
        with transaction.atomic():
            found["second"] = services.personal_namespace(user).pk

    threads = [_in_thread(first, errors), _in_thread(second, errors)]
    for thread in threads:
        thread.join(20)
    assert errors == []
    assert found["first"] == found["second"]
    assert Namespace.objects.filter(owner=user).count() == 1


def test_concurrent_project_creations_by_a_user_without_a_namespace_all_succeed(live_server, transactional_db):
    """Through a live server: pairs of simultaneous ``POST /projects`` (different paths)
    by users who have no personal namespace yet are all created."""
    url = f"{live_server.url}/api/v4/projects"
    for round_number in range(4):
        user = _user_without_namespace(f"racer{round_number}")
        token = make_token(user)
        barrier = threading.Barrier(2)
        answers, errors = [], []

        def post(path, token=token, barrier=barrier, answers=answers):
            barrier.wait(5)
            response = requests.post(url, json={"path": path}, headers={"PRIVATE-TOKEN": token}, timeout=30)
            answers.append((response.status_code, response.json()))

        threads = [_in_thread(lambda p=p: post(p), errors) for p in ("one", "two")]
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert sorted(status for status, _ in answers) == [201, 201], answers
        assert set(Project.objects.filter(namespace__owner=user).values_list("path", flat=True)) == {"one", "two"}


def test_concurrent_creations_of_the_same_project_give_one_project_and_a_gitlab_error(live_server, transactional_db):
    user = _user_without_namespace("samepath")
    token = make_token(user)
    url = f"{live_server.url}/api/v4/projects"
    barrier = threading.Barrier(3)
    answers, errors = [], []

    def post():
        barrier.wait(5)
        response = requests.post(url, json={"path": "same"}, headers={"PRIVATE-TOKEN": token}, timeout=30)
        answers.append((response.status_code, response.json()))

    threads = [_in_thread(post, errors) for _ in range(3)]
    for thread in threads:
        thread.join(30)
    assert errors == []
    statuses = sorted(status for status, _ in answers)
    assert statuses[0] == 201 and all(status in (201, 400) for status in statuses), answers
    for status, body in answers:
        if status == 400:
            assert body["message"]["path"] == ["has already been taken"], body
    assert Project.objects.filter(namespace__owner=user, path="same").count() == 1
