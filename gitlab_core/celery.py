"""The Celery application. Tasks live in ``workers/``; configuration in settings."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gitlab_core.settings")

app = Celery("gitlab_core")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers"])
