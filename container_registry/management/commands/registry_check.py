"""``manage.py registry_check``: check the live wiring with the registry, one line per check."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from container_registry.registry_checks import run_checks


class Command(BaseCommand):
    help = (
        "Check the registry at REGISTRY_API_URL: it answers /v2/, accepts our tokens, has deletes "
        "enabled, accepts writes, and its notifications arrive. Exits non-zero when a check fails."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--config",
            help="the registry's config.yml (a registry on this machine): compare it with our settings too",
        )

    def handle(self, *args, **options) -> None:
        checks = run_checks(config_path=options["config"])
        for check in checks:
            line = f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}"
            self.stdout.write(line if check.ok else f"{line}. Fix: {check.fix}" if check.fix else line)
        failed = [check.name for check in checks if not check.ok]
        if failed:
            raise CommandError(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
        self.stderr.write(f"all {len(checks)} checks passed")
