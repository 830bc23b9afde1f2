"""``manage.py run_cleanup_policy --project ID_OR_PATH [--dry-run]``."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from container_registry.cleanup_rules import InvalidCleanupRules
from container_registry.maintenance import run_cleanup_policy
from projects.models import Project

# Progress lines are printed at most this often (seconds) on long runs.
PROGRESS_INTERVAL = 2.0


class Command(BaseCommand):
    help = (
        "Run a project's cleanup policy now over all its container repositories (whether or not the "
        "policy is enabled) and print what it deleted; with --dry-run print every tag's decision instead."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, metavar="ID_OR_PATH", help="project id or full path")
        parser.add_argument("--dry-run", action="store_true", help="print the plan, delete nothing")

    def handle(self, *args, **options) -> None:
        """Run (or plan) the policy, print per-repository results and a summary.

        Exits non-zero when the project does not exist, its policy is invalid, or a
        repository could not be cleaned (a registry error or an ongoing run).
        """
        try:
            runs = run_cleanup_policy(options["project"], dry_run=options["dry_run"], progress=self._progress())
        except Project.DoesNotExist:
            raise CommandError(f"project {options['project']} not found")
        except InvalidCleanupRules as exc:
            raise CommandError(f"the cleanup policy of {options['project']} is not valid: {exc}")
        if not runs:
            self.stdout.write("The project has no container repositories; nothing to do.")
            return
        for run in runs:
            self._print_run(run, options["dry_run"])
        self._summary(runs, options["dry_run"])

    def _progress(self):
        last = [0.0]

        def report(path: str, deleted: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL or deleted >= total:
                last[0] = now
                self.stderr.write(f"{path}: {deleted}/{total} tags deleted")

        return report

    def _print_run(self, run, dry_run: bool) -> None:
        if dry_run:
            for d in run.plan:
                self.stdout.write(f"{run.path}:{d.name}\t{d.decision}\t{d.rule}\t{d.reason}")
        else:
            for name in run.deleted:
                self.stdout.write(f"{run.path}:{name}\tdeleted")
            self.stdout.write(f"{run.path}\t{run.status}\t{run.stop_reason}\t{len(run.deleted)} deleted")
        if run.error:
            self.stderr.write(self.style.ERROR(f"{run.path}: {run.error}"))

    def _summary(self, runs, dry_run: bool) -> None:
        failed = [run for run in runs if run.error]
        if dry_run:
            to_delete = sum(1 for run in runs for d in run.plan if d.delete)
            total = sum(len(run.plan) for run in runs)
            message = f"Dry run: {to_delete} of {total} tags in {len(runs)} repositories would be deleted."
        else:
            deleted = sum(len(run.deleted) for run in runs)
            unfinished = sum(1 for run in runs if run.status != "finished")
            message = f"{deleted} tags deleted from {len(runs)} repositories ({unfinished} unfinished)."
        if failed:
            raise CommandError(f"{message} {len(failed)} repositories failed.")
        self.stdout.write(self.style.SUCCESS(message))
