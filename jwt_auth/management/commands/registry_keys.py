"""``manage.py registry_keys --key PATH [--cert PATH] [--algorithm RS256|ES256]``.

Writes a new signing key and its self-signed certificate (put the certificate in the
registry's ``auth.token.rootcertbundle``) and prints the key's libtrust kid.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from jwt_auth.keys import SUPPORTED_ALGORITHMS, default_cert_path, generate_key_pair


class Command(BaseCommand):
    help = "Generate a registry token signing key and its self-signed certificate; print the kid."

    def add_arguments(self, parser):
        parser.add_argument("--key", required=True, help="where to write the PEM private key")
        parser.add_argument("--cert", help="where to write the certificate (default: the key path with .crt)")
        parser.add_argument("--algorithm", default="RS256", choices=SUPPORTED_ALGORITHMS)
        parser.add_argument("--force", action="store_true", help="overwrite an existing key")

    def handle(self, *args, **options):
        key_path = Path(options["key"])
        cert_path = Path(options["cert"]) if options["cert"] else default_cert_path(key_path)
        if key_path.exists() and not options["force"]:
            # Replacing a key in place invalidates every token it signed: rotate instead.
            raise CommandError(f"{key_path} exists; use --force to overwrite it, or write a new key and rotate")
        kid = generate_key_pair(key_path=key_path, cert_path=cert_path, algorithm=options["algorithm"])
        self.stdout.write(kid)
