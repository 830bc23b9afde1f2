"""``manage.py registry_usage``: registry bytes per project, largest first."""

from __future__ import annotations

import csv
import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_registry.errors import RegistryError
from container_registry.maintenance.usage import UsageRow, registry_usage

COLUMNS = ("project_id", "creator_id", "registry_size_bytes", "project_path")
# Progress is reported only when a run is big enough for someone to wonder.
PROGRESS_MIN_PROJECTS = 20
PROGRESS_INTERVAL_SECONDS = 2.0


class Command(BaseCommand):
    help = (
        "Print the disk space each project's container images use (manifests, configs and "
        "layers; layers shared within a project counted once), largest first. Also refreshes "
        "the projects' stored registry sizes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="Only the N largest projects.")
        parser.add_argument("--format", choices=("csv", "table"), default="table")

    def handle(self, *args, limit: int | None, format: str, **options) -> None:
        if limit is not None and limit < 1:
            raise CommandError("--limit must be a positive number")
        last = [0.0]

        def progress(done: int, total: int, path: str) -> None:
            now = time.monotonic()
            if total >= PROGRESS_MIN_PROJECTS and (now - last[0] >= PROGRESS_INTERVAL_SECONDS or done == total):
                last[0] = now
                self.stderr.write(f"{done}/{total} projects measured ({path})")

        try:
            rows = registry_usage(limit=limit, progress=progress)
        except RegistryError as exc:
            raise CommandError(f"the container registry failed: {exc}")
        if format == "csv":
            self._write_csv(rows)
        else:
            self._write_table(rows)
        total = sum(row.registry_size_bytes for row in rows)
        self.stderr.write(f"{len(rows)} projects, {total} bytes")

    def _write_csv(self, rows: list[UsageRow]) -> None:
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([row.project_id, row.creator_id or "", row.registry_size_bytes, row.project_path])

    def _write_table(self, rows: list[UsageRow]) -> None:
        cells = [COLUMNS] + [
            (str(r.project_id), str(r.creator_id or ""), str(r.registry_size_bytes), r.project_path) for r in rows
        ]
        widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
        for line in cells:
            # Numbers right-aligned, the path left-aligned.
            text = "  ".join(c.rjust(w) if i < 3 else c for i, (c, w) in enumerate(zip(line, widths, strict=True)))
            self.stdout.write(text.rstrip())
