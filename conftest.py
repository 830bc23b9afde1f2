"""Shared fixtures: users with each role on a private project in a nested group."""

from __future__ import annotations

import uuid

import pytest

from projects.models import AccessLevel, GroupMember, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user

pytest_plugins = ["tests_support.registry_fixtures", "tests_support.lingering_sessions"]


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    # Real PBKDF2 costs ~0.3 s per test user; tests of hashing itself opt back in.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_realm_decisions():
    # Realm decisions are kept per process for a second; one test's must not serve the
    # next (anonymous requests of two tests can be identical).
    from jwt_auth import decisions

    decisions.clear()
    yield
    decisions.clear()


@pytest.fixture(autouse=True)
def size_refreshes(request, monkeypatch):
    """The registry size refreshes enqueued during a test, as ``(project_id, countdown)``:
    recorded instead of written to the broker, where no worker would take them (tests
    with a real worker, ``celery_live``, enqueue for real)."""
    from container_registry import statistics
    from workers import statistics as statistics_tasks

    sent: list[tuple[int, int]] = []
    if "celery_live" not in request.keywords:
        monkeypatch.setattr(
            statistics_tasks.refresh_registry_size,
            "apply_async",
            lambda args, countdown, **options: sent.append((args[0], countdown)),
        )
        # Pending keys of earlier tests (project ids repeat between runs) stay in Redis.
        monkeypatch.setattr(statistics, "PENDING_KEY_PREFIX", f"{statistics.PENDING_KEY_PREFIX}:{uuid.uuid4()}")
    statistics._enqueued_here.clear()
    statistics._enqueued_elsewhere.clear()
    yield sent
    statistics._enqueued_here.clear()
    statistics._enqueued_elsewhere.clear()


@pytest.fixture(autouse=True)
def _no_current_request_id():
    # A request's id stays current in its thread after the response (for the server's
    # access line); one test's requests must not lend theirs to the next test's tasks.
    from gitlab_core import request_id

    request_id.set_current(None)
    yield
    request_id.set_current(None)


@pytest.fixture
def gitlab_client():
    """``gitlab_client(url, token)`` (or ``job_token=``): the real python-gitlab client, its HTTP session
    closed after the test. An idle keep-alive connection keeps a thread of the live
    server, and its database connection, until the end of the session, and the test
    database can then not be dropped."""
    import gitlab

    clients = []

    def make(url: str, token: str | None = None, *, job_token: str | None = None):
        client = gitlab.Gitlab(url, private_token=token, job_token=job_token)
        clients.append(client)
        return client

    yield make
    for client in clients:
        close_pools(client.session)


def close_pools(session) -> None:
    """Close a ``requests`` session's connections now. ``Session.close()`` only forgets
    urllib3 2's pools; their connections close when a pool is garbage-collected, and a
    response kept in a reference cycle (the traceback of a ``pytest.raises``) keeps its
    pool, and a live-server thread with its database connection, until the collector
    runs: after the test database should have been dropped."""
    for adapter in session.adapters.values():
        pools = adapter.poolmanager.pools
        for key in pools.keys():
            pool = pools.get(key)
            if pool is not None:
                pool.close()
    session.close()


@pytest.fixture
def cleanup_brake_off(db):
    """Turn the mass-deletion brake off: it holds the first run of a policy that deletes
    more than half of a repository's tags, which the tests of the rules and the scheduler
    do on purpose with a handful of tags. The brake's own tests leave it on."""
    from gitlab_core.models import ApplicationSettings

    settings = ApplicationSettings.current()
    settings.container_registry_cleanup_brake_enabled = False
    settings.save()


@pytest.fixture
def admin(db):
    return make_user("root", admin=True)


@pytest.fixture
def world(db):
    """A group ``acme`` with subgroup ``acme/platform`` and project ``acme/platform/svc``
    (private), and one user per role. Owner and maintainer are group members, the rest
    project members, so both paths of inheritance are exercised."""
    owner = make_user("owner")
    acme = make_group("acme", owner=owner)
    platform = make_group("platform", parent=acme, owner=owner)
    project = make_project(platform, "svc", creator=owner)
    users = {"owner": owner}
    maintainer = make_user("maintainer")
    GroupMember.objects.create(group=platform, user=maintainer, access_level=AccessLevel.MAINTAINER)
    users["maintainer"] = maintainer
    for role, level in (("developer", 30), ("reporter", 20), ("guest", 10)):
        user = make_user(role)
        ProjectMember.objects.create(project=project, user=user, access_level=level)
        users[role] = user
    users["outsider"] = make_user("outsider")
    return {"acme": acme, "platform": platform, "project": project, "users": users}


@pytest.fixture
def api_token():
    """``api_token(user, scopes=["api"])`` -> secret of a new personal access token."""
    return make_token
