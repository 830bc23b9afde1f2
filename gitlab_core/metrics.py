"""Prometheus metrics: every family the service exports, and their exposition.

Every process (each granian worker, each Celery worker child, beat, ``manage.py``) counts
into its own files in ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess
mode; default ``VAR_DIR/metrics``), and ``/-/metrics`` adds them up: a scrape reaches
one web process and still sees the whole installation on this host. Files of processes
that are gone are kept while the service runs (a respawned worker's counts stay), and
removed at the next start (``gitlab_core.metrics_files``: ``scripts/web.sh``, the
Celery worker). A process writes its files as soon as it imports this module (64 KiB,
sparse), so each ``manage.py`` run leaves two until then: a command run from cron every
minute would make scrapes read thousands of files; restart the web servers now and then,
or run such a command with its own ``PROMETHEUS_MULTIPROC_DIR``.

Recording costs a lock and a write to a memory-mapped file (about a microsecond); the
realm and the receiver record once per request (``docs/performance.md``). Labels take
values from small fixed sets only, never from a request.

Values computed from the database when scraped (repositories by deletion status) are
collectors that apps register with ``register_collector`` from their ``ready()``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from django.conf import settings

# The multiprocess mode is chosen when prometheus_client is first imported, from this
# variable: set it from the settings (which read it, with a default) before that import.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(settings.PROMETHEUS_MULTIPROC_DIR)

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.metrics_core import Metric  # noqa: E402

# Imported earlier by someone else, prometheus_client may have chosen in-process values.
values.ValueClass = values.get_value_class()

# Seconds; the realm and the receiver answer in milliseconds, a registry call in tens.
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
REGISTRY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

JWT_AUTH_REQUESTS = Counter(
    "jwt_auth_requests",
    "Token realm requests (/jwt/auth) by result: granted (a token with every action asked "
    "for), denied (a token without some of them, or a refusal), unauthorized (bad "
    "credentials), banned, error (server side).",
    ["result"],
)
JWT_AUTH_DURATION = Histogram(
    "jwt_auth_request_duration_seconds", "Time to answer a token realm request.", buckets=FAST_BUCKETS
)
REGISTRY_EVENTS = Counter(
    "registry_events",
    "Registry notification events by action and result: applied, duplicate (already "
    "applied), ignored (nothing to change), rejected (delivery refused), error (database "
    "unavailable, the registry retries).",
    ["action", "result"],
)
REGISTRY_CLIENT_REQUESTS = Counter(
    "registry_client_requests",
    "Our HTTP requests to the registry's API by method and result: ok (2xx, 3xx), "
    "not_found, unauthorized, client_error (other 4xx), server_error (5xx, 429), "
    "connection_error (refused, timed out).",
    ["method", "result"],
)
REGISTRY_CLIENT_DURATION = Histogram(
    "registry_client_request_duration_seconds",
    "Time of our HTTP requests to the registry's API.",
    ["method"],
    buckets=REGISTRY_BUCKETS,
)
CLEANUP_RUNS = Counter(
    "cleanup_runs",
    "Tag cleanup runs (policies, bulk deletes) by result: finished, unfinished (a limit "
    "was reached; it resumes), registry_error.",
    ["result"],
)
CLEANUP_TAGS_DELETED = Counter("cleanup_tags_deleted", "Tags deleted by cleanup runs.")
REPOSITORY_DELETIONS = Counter(
    "repository_deletions",
    "Repository deletion attempts by result: deleted, rescheduled (failed, tried again "
    "later), failed (gave up: delete_failed), skipped (not due, or taken by another run).",
    ["result"],
)
CELERY_TASKS = Counter(
    "celery_tasks",
    "Celery task outcomes in the workers by task name and result: succeeded, failed, retried, revoked.",
    ["task", "result"],
)
CELERY_TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "Run time of Celery tasks that ended (succeeded or failed).",
    ["task"],
    buckets=(0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0),
)

_collectors: list[Callable[[], Iterable[Metric]]] = []


def register_collector(collect: Callable[[], Iterable[Metric]]) -> None:
    """Add metrics computed at scrape time (``collect()`` yields ``Metric`` families)."""
    if collect not in _collectors:
        _collectors.append(collect)


class _Computed:
    def __init__(self, collect: Callable[[], Iterable[Metric]]):
        self.collect = collect


def exposition() -> tuple[str, bytes]:
    """The content type and text of every metric: all processes' counts, then the
    registered collectors."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    for collect in _collectors:
        registry.register(_Computed(collect))
    return CONTENT_TYPE_LATEST, generate_latest(registry)
