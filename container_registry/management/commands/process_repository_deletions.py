"""``manage.py process_repository_deletions``: run due repository deletions now."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from container_registry.maintenance import process_repository_deletions


class Command(BaseCommand):
    help = (
        "Run due container repository deletions once, in the foreground (for operators without a Celery "
        "worker): reset deletions stuck for 30 minutes, then delete every due repository and print a summary."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--limit", type=int, default=None, help="process at most this many repositories")

    def handle(self, *args, **options) -> None:
        """Process due deletions, printing one line per repository and a summary."""

        def progress(outcome) -> None:
            line = f"{outcome.repository_id}\t{outcome.path or '-'}\t{outcome.result}"
            if outcome.result == "deleted":
                line += f" ({outcome.deleted_tags} tags)"
            if outcome.error:
                line += f": {outcome.error}"
            self.stdout.write(line)

        summary = process_repository_deletions(limit=options["limit"], progress=progress)
        self.stdout.write(self.style.SUCCESS(f"Repository deletions: {summary}"))
