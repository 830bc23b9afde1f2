"""``manage.py retry_failed_deletions``: put ``delete_failed`` repositories back."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from container_registry.maintenance import retry_failed_deletions
from container_registry.models import MAX_DELETION_FAILURES


class Command(BaseCommand):
    help = (
        "Put container repositories whose deletion failed (delete_failed) back to delete_scheduled "
        f"with a failure count of 0, so that the deletion is tried again with {MAX_DELETION_FAILURES} more retries."
    )

    def add_arguments(self, parser) -> None:
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--repository", type=int, metavar="ID", help="one container repository, by id")
        which.add_argument("--project", metavar="ID_OR_PATH", help="every failed repository of a project")
        which.add_argument("--all", action="store_true", help="every failed repository")
        parser.add_argument("--dry-run", action="store_true", help="list what would be retried, change nothing")

    def handle(self, *args, **options) -> None:
        """Select the repositories, reset them (unless --dry-run) and print a summary."""
        try:
            result = retry_failed_deletions(
                repository_id=options["repository"],
                project=options["project"],
                all=options["all"],
                dry_run=options["dry_run"],
            )
        except (LookupError, ValueError) as exc:
            raise CommandError(str(exc).strip("'\"")) from exc
        verb = "would be scheduled" if result.dry_run else "scheduled"
        for repo in result.repositories:
            self.stdout.write(
                f"{repo.pk}\t{repo.path}\t{verb} again (was delete_failed after {repo.failed_deletion_count} "
                f"failures; last error: {repo.last_deletion_error or '-'})"
            )
        for repo in result.not_failed:
            self.stdout.write(f"{repo.pk}\t{repo.path}\tleft alone: status is {repo.status or 'active'}")
        if not result.repositories:
            self.stdout.write("No repository in delete_failed matched; nothing to do.")
            return
        prefix = "Dry run: " if result.dry_run else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"{prefix}{result.count} repositor{'y' if result.count == 1 else 'ies'} {verb} for deletion; "
                f"failure count reset to 0, so ten more tries follow ({MAX_DELETION_FAILURES} retries after the "
                "first attempt, waiting 1, 2, 4, ... 512 minutes)."
            )
        )
