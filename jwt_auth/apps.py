from __future__ import annotations

from django.apps import AppConfig


class JwtAuthConfig(AppConfig):
    name = "jwt_auth"

    def ready(self) -> None:
        from jwt_auth import decisions

        decisions.connect_invalidation()
