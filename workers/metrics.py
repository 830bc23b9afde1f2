"""Celery task outcomes in ``celery_tasks_total`` and ``celery_task_duration_seconds``.

Counted from Celery's signals in the process that runs the task (each prefork child
writes its own files in ``PROMETHEUS_MULTIPROC_DIR``, which ``/-/metrics`` adds up): a
task that ended is ``succeeded``, ``failed`` or ``retried`` (scheduled again, by our
backoff for transient registry faults), one revoked before it ran is ``revoked``. The
worker's main process clears the files of processes that are gone when it starts.
"""

from __future__ import annotations

from time import perf_counter

from celery import signals, states
from django.conf import settings

from gitlab_core import metrics
from gitlab_core.metrics_files import clear_stale_files

_RESULTS = {states.SUCCESS: "succeeded", states.FAILURE: "failed", states.RETRY: "retried"}
# Start times of the tasks running in this process (a prefork child runs one at a time).
_started: dict[str, float] = {}


@signals.worker_init.connect
def _clear_stale_files(**_kwargs) -> None:
    clear_stale_files(settings.PROMETHEUS_MULTIPROC_DIR)


@signals.task_prerun.connect
def _task_started(task_id=None, **_kwargs) -> None:
    if task_id is not None:
        _started[task_id] = perf_counter()


@signals.task_postrun.connect
def _task_ended(sender=None, task_id=None, state=None, **_kwargs) -> None:
    started = _started.pop(task_id, None)
    result = _RESULTS.get(state)
    if sender is None or result is None:
        return
    metrics.CELERY_TASKS.labels(sender.name, result).inc()
    if started is not None and result != "retried":
        metrics.CELERY_TASK_DURATION.labels(sender.name).observe(perf_counter() - started)


@signals.task_revoked.connect
def _task_revoked(request=None, **_kwargs) -> None:
    name = getattr(request, "task", None) or getattr(request, "name", None)
    if name:
        metrics.CELERY_TASKS.labels(name, "revoked").inc()
