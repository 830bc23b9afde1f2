"""``manage.py registry_config``: print the registry's ``config.yml`` from our settings."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from container_registry.registry_config import DEFAULT_STORAGE_ROOT, config_from_settings, render
from gitlab_core.errors import ServiceError


class Command(BaseCommand):
    help = (
        "Print a complete config.yml for the container registry (distribution 2.8) wired to this "
        "service: realm, service, issuer, certificate bundle, notification endpoint and secret "
        "come from our settings."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--realm-url", required=True, help="public URL of our token realm, e.g. https://gitlab.example.com/jwt/auth"
        )
        parser.add_argument(
            "--notifications-url",
            help="where the registry posts its events (default: the event receiver on the realm's host)",
        )
        parser.add_argument(
            "--storage-root", default=DEFAULT_STORAGE_ROOT, help=f"image storage (default {DEFAULT_STORAGE_ROOT})"
        )
        parser.add_argument("--listen", help="address the registry listens on (default: :PORT of REGISTRY_API_URL)")
        parser.add_argument(
            "--read-only", action="store_true", help="read-only mode, for garbage collection (pushes are refused)"
        )
        parser.add_argument(
            "--cert-bundle",
            help="write the certificates of every trusted key to this file and name it as the "
            "rootcertbundle (required during a key rotation)",
        )

    def handle(self, *args, **options) -> None:
        try:
            config = config_from_settings(
                realm_url=options["realm_url"],
                notifications_url=options["notifications_url"],
                storage_root=options["storage_root"],
                listen=options["listen"],
                read_only=options["read_only"],
                cert_bundle_path=options["cert_bundle"],
            )
        except ServiceError as exc:
            raise CommandError(exc.body["message"])
        if options["cert_bundle"]:
            self.stderr.write(f"wrote the certificate bundle to {options['cert_bundle']}")
        self.stdout.write(render(config), ending="")
