"""``manage.py registry_garbage_collect``: reclaim the space of deleted images."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_registry.garbage_collection import collect_garbage
from gitlab_core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Run the registry's garbage-collect on its storage (same machine) and report the blobs and "
        "manifests removed and the bytes freed. Refuses while the registry at REGISTRY_API_URL "
        "accepts writes: stop it or run it read-only first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--config", required=True, help="the registry's config.yml")
        parser.add_argument(
            "--delete-untagged",
            action="store_true",
            help="also remove manifests no tag points at (the dummy manifests tag deletion leaves, images "
            "pushed by digest only, and the children of multi-arch images)",
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would be removed; change nothing")

    def handle(self, *args, **options) -> None:
        try:
            report = collect_garbage(
                config_path=Path(options["config"]),
                delete_untagged=options["delete_untagged"],
                dry_run=options["dry_run"],
                progress=self.stderr.write,
            )
        except ServiceError as exc:
            raise CommandError(exc.body["message"])
        verb = "would remove" if report.dry_run else "removed"
        self.stdout.write(
            f"{verb} {report.blobs_removed} blobs and {report.manifests_removed} manifests "
            f"({report.blobs_marked} blobs in use); storage {report.size_before} -> {report.size_after} bytes, "
            f"{report.bytes_freed} freed"
        )
