"""A stalled or unreachable PostgreSQL answers 503, in time, instead of holding a thread.

The stall is real: another connection holds ``ACCESS EXCLUSIVE`` locks on the tables a
request reads, so its statement waits until the web server's statement timeout cancels
it. The unreachable database is real too: a socket that listens but never accepts, so
the connection attempt waits until the connect timeout. Both through a real granian
(``scripts/web.sh``): the API on Django's path, the token realm through its WSGI door.
"""

from __future__ import annotations

import base64
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import requests
from django.db import connection
from django.test import Client

from gitlab_core.models import PersonalAccessToken, User
from gitlab_core.redaction import FILTERED
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.web_server import granian

pytestmark = pytest.mark.django_db(transaction=True)

STATEMENT_TIMEOUT = 2
CONNECT_TIMEOUT = 2
REALM_QUERY = {"service": "container_registry", "scope": "repository:acme/svc/img:pull"}


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("statement timeouts and table locks are PostgreSQL's")


@pytest.fixture
def owner_and_token(db):
    owner = make_user("stalled")
    make_project(make_group("acme", owner=owner), "svc", creator=owner)
    return owner, make_token(owner, ["api", "read_registry"])


@pytest.fixture
def keys(settings, registry_keys):
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)


def _basic(login: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()


@contextmanager
def tables_locked(*models) -> Iterator[None]:
    """Another session holds ACCESS EXCLUSIVE locks on the models' tables until the end
    (at most 30 s: PostgreSQL ends the session then, should a test hang)."""
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"] or "localhost",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    )
    try:
        other.execute("SET idle_in_transaction_session_timeout = '30s'")
        other.execute("SET lock_timeout = '10s'")
        other.execute(f"LOCK TABLE {', '.join(model._meta.db_table for model in models)} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        other.close()  # the transaction ends, the locks go


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_a_stalled_database_answers_503_within_the_statement_timeout_on_the_api_and_the_realm(
    tmp_path, owner_and_token, keys
):
    _require_postgresql()
    owner, token = owner_and_token
    with granian(tmp_path, {"WEB_STATEMENT_TIMEOUT": str(STATEMENT_TIMEOUT)}) as web:
        api = lambda: requests.get(f"{web.base}/api/v4/user?private_token={token}", timeout=30)  # noqa: E731
        realm = lambda: requests.get(  # noqa: E731
            f"{web.base}/jwt/auth",
            params=REALM_QUERY,
            headers={"Authorization": _basic(owner.username, token)},
            timeout=30,
        )
        assert api().status_code == 200  # warm: the process and its connection are up

        with tables_locked(User, PersonalAccessToken):
            api_stalled, api_seconds = _timed(api)
            realm_stalled, realm_seconds = _timed(realm)

        assert api_stalled.status_code == 503
        assert api_stalled.json() == {"message": "503 Service Unavailable"}
        assert realm_stalled.status_code == 503
        assert realm_stalled.json()["errors"][0]["code"] == "UNAVAILABLE"
        for seconds in (api_seconds, realm_seconds):
            assert STATEMENT_TIMEOUT * 0.9 <= seconds < STATEMENT_TIMEOUT + 5
        # The lock is gone: the same threads and connections answer again.
        assert api().status_code == 200
        assert realm().status_code == 200
        log = web.log()
    # The 503 was logged with the request's path, and the token was not.
    assert "Service Unavailable" in log
    assert f"private_token={FILTERED}" in log
    assert token not in log


def test_migrations_and_workers_keep_no_statement_timeout(db):
    _require_postgresql()
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        assert cursor.fetchone()[0] == "0"


def test_an_unreachable_database_answers_503_within_the_connect_timeout(tmp_path, owner_and_token, keys):
    owner, token = owner_and_token
    with socket.socket() as blackhole:
        # Listens (the TCP handshake completes) but never accepts nor answers.
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        url = f"postgres://nobody@127.0.0.1:{blackhole.getsockname()[1]}/registry"
        env = {"DATABASE_URL": url, "DATABASE_CONNECT_TIMEOUT": str(CONNECT_TIMEOUT)}
        with granian(tmp_path, env) as web:
            api, api_seconds = _timed(
                lambda: requests.get(f"{web.base}/api/v4/user", headers={"PRIVATE-TOKEN": token}, timeout=30)
            )
            realm, realm_seconds = _timed(
                lambda: requests.get(
                    f"{web.base}/jwt/auth",
                    params=REALM_QUERY,
                    headers={"Authorization": _basic(owner.username, token)},
                    timeout=30,
                )
            )

    assert api.status_code == 503
    assert api.json() == {"message": "503 Service Unavailable"}
    assert realm.status_code == 503
    assert realm.json()["errors"][0]["code"] == "UNAVAILABLE"
    for seconds in (api_seconds, realm_seconds):
        assert seconds < CONNECT_TIMEOUT * 2 + 5


def test_a_statement_cancelled_in_a_django_view_is_a_503_and_logs_no_token(owner_and_token, caplog):
    """In-process, so that ``caplog`` sees Django's own 5xx record of the request."""
    _require_postgresql()
    _, token = owner_and_token
    client = Client(raise_request_exception=False)
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = '500ms'")
    try:
        with tables_locked(User, PersonalAccessToken):
            response = client.get(f"/api/v4/user?private_token={token}&trace={secrets.token_hex(4)}")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")

    assert response.status_code == 503
    assert response.json() == {"message": "503 Service Unavailable"}
    logged = [record for record in caplog.records if record.name == "django.request"]
    assert logged and logged[-1].status_code == 503
    assert token not in caplog.text
    assert all(token not in record.getMessage() for record in caplog.records)
