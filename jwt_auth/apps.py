from __future__ import annotations

from django.apps import AppConfig


class JwtAuthConfig(AppConfig):
    name = "jwt_auth"

    def ready(self) -> None:
        from gitlab_core import health
        from jwt_auth import decisions, monitoring, refresh_tokens  # noqa: F401 (refresh_tokens: its receiver)

        decisions.connect_invalidation()
        health.register_check("signing_key", monitoring.check_signing_key)
