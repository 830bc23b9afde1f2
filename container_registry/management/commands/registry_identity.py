"""``manage.py registry_identity``: record the registry's vendor and version."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from container_registry.errors import RegistryError
from container_registry.services import record_registry_identity


class Command(BaseCommand):
    help = (
        "Read the registry's /v2/ headers and store its vendor, version and features in the "
        "application settings (run at start-up and whenever the registry is upgraded)."
    )

    def handle(self, *args, **options) -> None:
        try:
            app_settings = record_registry_identity()
        except RegistryError as exc:
            raise CommandError(f"the container registry failed: {exc}")
        vendor = app_settings.container_registry_vendor or "unknown"
        version = app_settings.container_registry_version or "unknown"
        self.stdout.write(f"registry vendor: {vendor}, version: {version}")
