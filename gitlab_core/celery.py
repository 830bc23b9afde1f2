"""The Celery application. Tasks live in ``workers/``; configuration in settings.

Its processes log as the web does: the worker and beat keep the JSON logging of
``settings.LOGGING`` (``LOG_LEVEL``) instead of Celery's own text format, which drops the
``extra=`` fields of the records. The request id of the request that enqueued a task
travels in the message's ``request_id`` header and is current while the task runs
(``gitlab_core.request_id``); a task enqueued without one gets a new id.
"""

from __future__ import annotations

import os

from celery import Celery, signals

from gitlab_core import request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitlab_core.settings")

app = Celery("gitlab_core")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])

MESSAGE_HEADER = "request_id"


@signals.setup_logging.connect
def use_django_logging(**kwargs) -> None:
    # A receiver makes Celery leave the logging alone; apply the service's configuration.
    from django.conf import settings

    from gitlab_core.logging import configure

    configure(settings.LOGGING)


@signals.before_task_publish.connect
def send_request_id(headers: dict | None = None, **kwargs) -> None:
    current = request_id.current()
    if current is not None and headers is not None:
        headers[MESSAGE_HEADER] = current


@signals.task_prerun.connect
def receive_request_id(task=None, **kwargs) -> None:
    if task is None or task.request.is_eager:
        return  # an eager task runs inside its caller and keeps the caller's id
    received = request_id.valid_request_id(getattr(task.request, MESSAGE_HEADER, None))
    request_id.set_current(received or request_id.new_request_id())


@signals.task_postrun.connect
def forget_request_id(task=None, **kwargs) -> None:
    if task is not None and not task.request.is_eager:
        request_id.set_current(None)
