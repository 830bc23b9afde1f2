from __future__ import annotations

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # cleanup, statistics, webhooks: the receivers that turn the apps' requests into
        # tasks; metrics: task outcomes (its signals fire in the worker only).
        from workers import cleanup, metrics, statistics, webhooks  # noqa: F401
