"""``manage.py cleanup_policy_report --disabled | --enable [--yes]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from container_registry.maintenance import enable_cleanup_policies, projects_with_disabled_cleanup_policy


class Command(BaseCommand):
    help = (
        "List projects that have container repositories but a disabled cleanup policy (--disabled), "
        "or enable those policies (--enable, after confirmation unless --yes)."
    )

    def add_arguments(self, parser) -> None:
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--disabled", action="store_true", help="list the projects")
        action.add_argument("--enable", action="store_true", help="enable their cleanup policies")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, **options) -> None:
        """List the projects; with --enable, enable their policies and print a summary.
        Exits non-zero when confirmation is refused or a policy could not be enabled."""
        projects = list(projects_with_disabled_cleanup_policy())
        for project in projects:
            self.stdout.write(f"{project.pk}\t{project.full_path}\t{project.repository_count} repositories")
        if not projects:
            self.stdout.write("Every project with container repositories has an enabled cleanup policy.")
            return
        if options["disabled"]:
            self.stdout.write(f"{len(projects)} projects with container repositories have a disabled cleanup policy.")
            return
        if not options["yes"] and not self._confirm(len(projects)):
            raise CommandError("Aborted; nothing changed.")
        report = enable_cleanup_policies(projects)
        for path, problem in report.skipped.items():
            self.stderr.write(self.style.ERROR(f"{path}: not enabled, {problem}"))
        message = f"Enabled the cleanup policy of {len(report.enabled)} projects."
        if report.skipped:
            raise CommandError(f"{message} {len(report.skipped)} could not be enabled.")
        self.stdout.write(self.style.SUCCESS(message))

    def _confirm(self, count: int) -> bool:
        self.stdout.write(f"Enable the cleanup policy of these {count} projects? [y/N] ", ending="")
        self.stdout.flush()
        try:
            answer = input()
        except EOFError:
            return False
        return answer.strip().lower() in ("y", "yes")
