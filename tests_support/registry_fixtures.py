"""pytest plugin: a real registry wired to the live test server.

``registry`` starts distribution 2.8 with token auth pointing at ``live_server``'s
``/jwt/auth`` and notifications pointing at its event receiver, and points the
service's settings at that registry. Without ``docker-registry``/``skopeo``/``umoci``
the tests that need it are skipped, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

import pytest

from tests_support.registry import Registry, create_registry, generate_key_pair, missing_tools

NOTIFICATION_PATH = "/api/v4/container_registry_event/events"


def _require_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    message = f"end-to-end registry tests need {', '.join(missing)} (apt-get install docker-registry skopeo umoci)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


class RegistryKeys:
    """The signing key and the certificate bundle the registry trusts."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.key_path = directory / "registry.key"
        self.cert_path = directory / "registry.crt"

    def __repr__(self) -> str:
        return f"RegistryKeys({self.dir})"


@pytest.fixture(scope="session")
def registry_keys(tmp_path_factory) -> RegistryKeys:
    keys = RegistryKeys(tmp_path_factory.mktemp("registry-keys"))
    generate_key_pair(key_path=keys.key_path, cert_path=keys.cert_path)
    return keys


@pytest.fixture
def registry(live_server, settings, registry_keys, tmp_path) -> Registry:
    """A started registry; settings point at it. Stopped after the test."""
    _require_tools()
    secret = secrets.token_urlsafe(24)
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_NOTIFICATION_SECRET = secret
    instance = create_registry(
        work_dir=tmp_path / "registry",
        realm=f"{live_server.url}/jwt/auth",
        issuer=settings.REGISTRY_ISSUER,
        cert_bundle=registry_keys.cert_path,
        notification_url=f"{live_server.url}{NOTIFICATION_PATH}",
        notification_secret=secret,
    )
    settings.REGISTRY_API_URL = instance.url
    settings.REGISTRY_HOST_PORT = instance.host_port
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()
        _wait_for_quiet_database()


def _wait_for_quiet_database(timeout: float = 10.0, quiet_for: float = 0.5) -> None:
    """Let the live server finish the notifications the registry sent just before it
    stopped. A transactional test's flush (TRUNCATE of every table) that overlaps the
    receiver's transaction can deadlock on PostgreSQL, and the flush is the one aborted.
    On a loaded machine a request already read may reach the database late, so the
    database must stay quiet for ``quiet_for`` seconds in a row."""
    from django.db import connection

    time.sleep(0.1)
    if connection.vendor != "postgresql":
        return
    deadline = time.monotonic() + timeout
    quiet_since = None
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
            if cursor.fetchone()[0] == 0:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= quiet_for:
                    return
            else:
                quiet_since = None
            time.sleep(0.05)


def pytest_collection_modifyitems(config, items) -> None:
    """``celery_live`` tests run only in the pass that has Redis (``CELERY_BROKER_URL=redis://``)."""
    if os.environ.get("CELERY_BROKER_URL", "").startswith(("redis://", "rediss://")):
        return
    skip = pytest.mark.skip(reason="celery_live: runs when CELERY_BROKER_URL is redis:// (scripts/test.sh does it)")
    for item in items:
        if "celery_live" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _flush_that_outlasts_a_late_writer():
    """A transactional test ends with a flush (TRUNCATE of every table). On PostgreSQL a
    late writer the test could not wait for (a notification the registry sent just before
    it stopped, a live worker finishing its task) can deadlock with it, and PostgreSQL
    aborts the flush; the next test then starts on the rows left behind. The flush is
    tried again after the writer is gone (the deadlock ended the other way round, or the
    writer finished)."""
    from django.core.management.base import CommandError
    from django.core.management.commands import flush
    from django.db.utils import OperationalError

    original = flush.Command.handle

    def handle(self, **options):
        for attempt in range(5):
            try:
                return original(self, **options)
            except CommandError as exc:
                cause = exc.__cause__
                if not isinstance(cause, OperationalError) or "deadlock" not in str(cause) or attempt == 4:
                    raise
                _wait_for_quiet_database(timeout=5.0)

    flush.Command.handle = handle
    yield
    flush.Command.handle = original
