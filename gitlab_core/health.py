"""``/-/liveness``, ``/-/readiness`` and ``/-/metrics``: what load balancers and
Prometheus ask.

The three are bare WSGI doors (``gitlab_core.doors``, opened in ``gitlab_core.wsgi``),
so they answer whatever the ``Host`` header (a probe by IP address) and over plain
HTTP; the Django views of the same paths (``gitlab_core.health_urls``) call the same
functions.

* liveness: 200 ``{"status": "ok"}`` while the process serves requests; it asks nothing
  of any dependency (a dead database must not get the web servers restarted).
* readiness: each registered check runs in its own thread, all at once, and the answer
  waits for them at most ``CHECK_TIMEOUT`` seconds: a dependency that hangs is reported
  as failed and the answer still comes in time. A check still running from an earlier
  probe is not started again (a hanging dependency holds one thread per check, not one
  per probe). 200 when every check passed, else 503. Each failed check says what to do
  in ``message``; the underlying error (``detail``: host names, paths) is shown only to
  the addresses of ``MONITORING_ALLOWED_IPS``.
* metrics: the Prometheus text of ``gitlab_core.metrics`` for ``MONITORING_ALLOWED_IPS``
  (matched against ``gitlab_core.client_address``: the peer, or behind
  ``TRUSTED_PROXIES`` the client they name), 403 for anyone else.

The checks of this app (database, cache, broker, migrations) are here; the apps above it
register theirs (registry, signing key) from their ``ready()`` with ``register_check``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.migrations.executor import MigrationExecutor

from gitlab_core import doors, metrics
from gitlab_core.client_address import client_address, in_networks
from gitlab_core.redaction import redact

logger = logging.getLogger(__name__)

# Seconds a probe waits for its checks, which run at once: the answer comes well within
# the 2 seconds a load balancer's probe is usually given.
CHECK_TIMEOUT = 1.5
# The order of the checks in the answer; checks registered under other names follow.
CHECK_ORDER = ("database", "cache", "broker", "registry", "signing_key", "migrations")

Check = Callable[[], dict]


class CheckFailed(Exception):
    """A dependency is not ready: ``message`` tells the operator what to do, ``detail``
    is the underlying error (shown to monitoring addresses only)."""

    def __init__(self, message: str, *, detail: str = "", **fields):
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.fields = fields


_checks: dict[str, Check] = {}
_in_flight: dict[str, threading.Thread] = {}
_lock = threading.Lock()


def register_check(name: str, check: Check) -> None:
    """Add a readiness check: ``check()`` returns details to show (a dict, may be empty)
    or raises ``CheckFailed``; any other exception fails it too."""
    _checks[name] = check


def run_checks(timeout: float = CHECK_TIMEOUT) -> dict[str, dict]:
    """Every check's result, ``{"status": "ok"|"failed", "message"?, "detail"?, ...}``,
    within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    names = sorted(_checks, key=lambda name: CHECK_ORDER.index(name) if name in CHECK_ORDER else len(CHECK_ORDER))
    results: dict[str, dict] = {}
    started: dict[str, tuple[threading.Thread, dict]] = {}
    with _lock:
        for name in names:
            running = _in_flight.get(name)
            if running is not None and running.is_alive():
                hint = _HINTS.get(name, "")
                results[name] = _failed(f"the check started by an earlier probe has not answered yet: {hint}")
                continue
            box: dict = {}
            thread = threading.Thread(target=_run, args=(name, _checks[name], box), name=f"readiness-{name}")
            thread.daemon = True
            _in_flight[name] = thread
            started[name] = (thread, box)
            thread.start()
    for name, (thread, box) in started.items():
        thread.join(max(0.0, deadline - time.monotonic()))
        results[name] = box.get("result") or _failed(f"no answer within {timeout:g} s: {_HINTS.get(name, '')}".strip())
    return {name: results[name] for name in names}


def _run(name: str, check: Check, box: dict) -> None:
    try:
        box["result"] = {"status": "ok", **(check() or {})}
    except CheckFailed as exc:
        box["result"] = {**_failed(exc.message, exc.detail), **exc.fields}
    except Exception as exc:  # noqa: BLE001 - any error means "not ready"; logged with its traceback
        logger.exception("readiness check %s failed", name)
        box["result"] = _failed(_HINTS.get(name, "see the service's log"), f"{exc.__class__.__name__}: {exc}")
    finally:
        # This thread's own database connection (Django keeps one per thread).
        connections.close_all()


def _failed(message: str, detail: str = "") -> dict:
    result = {"status": "failed", "message": message}
    if detail:
        result["detail"] = redact(detail)[:500]
    return result


# What an operator does when a check fails without saying more.
_HINTS = {
    "database": "check that the database server runs and DATABASE_URL reaches it",
    "cache": "check that the cache (Redis of CACHE_URL, else the database) runs and answers",
    "broker": "check that the Celery broker of CELERY_BROKER_URL runs and answers",
    "registry": "check that the registry runs and REGISTRY_API_URL reaches it",
    "signing_key": "check REGISTRY_KEY_PATH (manage.py registry_keys writes a key)",
    "migrations": "run manage.py migrate",
}


# --- the checks of this app ---------------------------------------------------------------


def check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - every driver error means the same here
        raise CheckFailed(_HINTS["database"], detail=f"{exc.__class__.__name__}: {exc}") from exc
    return {}


def check_cache() -> dict:
    key = f"readiness:{os.getpid()}"
    token = str(time.time_ns())
    try:
        cache.set(key, token, 60)
        read = cache.get(key)
    except Exception as exc:  # noqa: BLE001 - every backend error means the same here
        raise CheckFailed(_HINTS["cache"], detail=f"{exc.__class__.__name__}: {exc}") from exc
    if read != token:
        raise CheckFailed("the cache does not keep what is written to it (is it full, or read-only?)")
    return {}


def check_broker() -> dict:
    url = settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0]
    if scheme == "memory":
        return {}
    if scheme == "filesystem":
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        if not (folder.is_dir() and os.access(folder, os.W_OK)):
            raise CheckFailed(f"the broker folder {folder} is missing or not writable")
        return {}
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise CheckFailed(_HINTS["broker"], detail=f"{exc.__class__.__name__}: {exc}") from exc
    finally:
        client.close()
    return {}


def check_migrations() -> dict:
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:  # noqa: BLE001 - the database check says more
        raise CheckFailed(
            "cannot read the applied migrations (see the database check)", detail=f"{exc.__class__.__name__}: {exc}"
        ) from exc
    if plan:
        first = plan[0][0]
        raise CheckFailed(
            f"{len(plan)} migration(s) not applied, first {first.app_label}.{first.name}: run manage.py migrate"
        )
    return {}


register_check("database", check_database)
register_check("cache", check_cache)
register_check("broker", check_broker)
register_check("migrations", check_migrations)


# --- the door handlers ----------------------------------------------------------------------

NO_STORE = [("Cache-Control", "no-store")]


def is_monitoring_client(environ) -> bool:
    return in_networks(client_address(environ), settings.MONITORING_ALLOWED_IPS)


def liveness(environ) -> doors.Answer:
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return doors.json_answer(405, {"message": "405 Method Not Allowed"})
    return doors.json_answer(200, {"status": "ok"}, NO_STORE)


def readiness(environ) -> doors.Answer:
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return doors.json_answer(405, {"message": "405 Method Not Allowed"})
    checks = run_checks()
    if not is_monitoring_client(environ):
        for result in checks.values():
            result.pop("detail", None)
    ready = all(result["status"] == "ok" for result in checks.values())
    payload = {"status": "ok" if ready else "failed", "checks": checks}
    return doors.json_answer(200 if ready else 503, payload, NO_STORE)


def metrics_text(environ) -> doors.Answer:
    if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return doors.json_answer(405, {"message": "405 Method Not Allowed"})
    if not is_monitoring_client(environ):
        return doors.json_answer(403, {"message": "403 Forbidden"})
    content_type, body = metrics.exposition()
    return 200, NO_STORE, content_type, body
