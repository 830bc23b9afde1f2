from __future__ import annotations

from django.apps import AppConfig


class GitlabCoreConfig(AppConfig):
    name = "gitlab_core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the ``__any`` lookup before any query uses it.
        from gitlab_core import db  # noqa: F401
