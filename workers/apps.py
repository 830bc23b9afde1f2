from __future__ import annotations

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Connects the receivers that turn the apps' requests into tasks.
        from workers import cleanup, statistics, webhooks  # noqa: F401
