"""``manage.py registry_sync``: create the repository rows of images the registry already holds."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_registry.errors import RegistryError
from container_registry.maintenance.sync import CREATED, MISSING, UNMATCHED, SyncReport, registry_sync

PROGRESS_INTERVAL_SECONDS = 2.0
LABELS = {CREATED: "created", UNMATCHED: "no project", MISSING: "not in registry"}


class Command(BaseCommand):
    help = (
        "Walk the registry's catalog and create the container repository rows of the image paths "
        "that belong to a project, so that the API, cleanup policies and repository deletion see them. "
        "Paths of no project and rows the registry no longer lists are reported, never changed. "
        "Prints one line per reported path on stdout, progress and a summary on stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report what would be created, change nothing")
        parser.add_argument("--project", metavar="ID_OR_PATH", help="only the images of this project")

    def handle(self, *args, dry_run: bool, project: str | None, **options) -> None:
        last = [time.monotonic()]
        verb = "to create" if dry_run else LABELS[CREATED]

        def on_path(kind: str, path: str) -> None:
            self.stdout.write(f"{verb if kind == CREATED else LABELS[kind]}\t{path}")

        def progress(report: SyncReport) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL_SECONDS:
                last[0] = now
                self.stderr.write(f"{report.scanned} catalog paths read, {report.created} {verb}")

        try:
            report = registry_sync(dry_run=dry_run, project=project, on_path=on_path, progress=progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        except RegistryError as exc:
            raise CommandError(f"the container registry failed: {exc}") from exc
        prefix = "Dry run: " if dry_run else ""
        missing = (
            f"{report.missing} rows not in the registry"
            if report.missing_checked
            else "rows not compared: the catalog was not in the registry's usual order"
        )
        self.stderr.write(
            f"{prefix}{report.scanned} catalog paths in {report.pages} pages: {report.created} repositories {verb}, "
            f"{report.existing} already known, {report.unmatched} of no project, "
            f"{report.pending_delete} of projects being deleted; {missing}"
        )
