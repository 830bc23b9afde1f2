from __future__ import annotations

from django.apps import AppConfig


class ContainerRegistryConfig(AppConfig):
    name = "container_registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import container_registry.deletion_signals  # noqa: F401
        from container_registry import monitoring, receivers  # noqa: F401
        from gitlab_core import health, metrics

        health.register_check("registry", monitoring.check_registry)
        metrics.register_collector(monitoring.repositories_by_status)
        metrics.register_collector(monitoring.repositories_held_by_the_brake)
