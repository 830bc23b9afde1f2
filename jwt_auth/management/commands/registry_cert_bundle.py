"""``manage.py registry_cert_bundle [--output PATH]``.

Prints (or writes) the certificates of every configured key (``REGISTRY_KEY_PATH`` and
``REGISTRY_EXTRA_KEY_PATHS``): the registry's ``rootcertbundle`` during a rotation.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jwt_auth.keys import KeyConfigurationError, certificate_bundle


class Command(BaseCommand):
    help = "Print the certificate bundle of all configured registry signing keys."

    def add_arguments(self, parser):
        parser.add_argument("--output", help="write the bundle to this file instead of stdout")

    def handle(self, *args, **options):
        try:
            bundle = certificate_bundle()
        except KeyConfigurationError as exc:
            raise CommandError(str(exc))
        if options["output"]:
            Path(options["output"]).write_text(bundle)
            self.stderr.write(f"wrote {bundle.count('BEGIN CERTIFICATE')} certificate(s) to {options['output']}")
        else:
            self.stdout.write(bundle, ending="")
