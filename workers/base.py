"""The base class of our Celery tasks that talk to the registry.

Only transient registry faults (connection refused, timeouts, 5xx, 429) are retried,
with exponential backoff and full jitter so that a fleet of workers does not hammer a
registry that is coming back up. Permanent faults and programming errors fail at once.
Every task has a soft and a hard time limit; the soft one raises inside the task so that
the service can record how far it got.

    @app.task(base=RegistryTask, name="container_registry.something")
    def something(repository_id: int) -> None: ...

Tasks are enqueued with ``delay_on_commit`` (from Celery's ``DjangoTask``), so a worker
never sees a row the enqueuing transaction has not committed yet.
"""

from __future__ import annotations

from celery.contrib.django.task import DjangoTask
from django.conf import settings

from container_registry.errors import TransientRegistryError

# Seconds: 30, 60, 120, ... capped at 10 minutes, each drawn uniformly below the cap.
RETRY_BACKOFF_SECONDS = 30
RETRY_BACKOFF_MAX_SECONDS = 600
MAX_RETRIES = 5


class RegistryTask(DjangoTask):
    """Retries ``TransientRegistryError`` with backoff and jitter; nothing else."""

    autoretry_for = (TransientRegistryError,)
    retry_backoff = RETRY_BACKOFF_SECONDS
    retry_backoff_max = RETRY_BACKOFF_MAX_SECONDS
    retry_jitter = True
    max_retries = MAX_RETRIES
    acks_late = True
    soft_time_limit = settings.CELERY_TASK_SOFT_TIME_LIMIT
    time_limit = settings.CELERY_TASK_TIME_LIMIT
