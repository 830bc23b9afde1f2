from __future__ import annotations

from django.apps import AppConfig


class ContainerRegistryConfig(AppConfig):
    name = "container_registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import container_registry.deletion_signals  # noqa: F401
        from container_registry import receivers  # noqa: F401
