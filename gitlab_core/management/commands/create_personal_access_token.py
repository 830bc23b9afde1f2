"""``manage.py create_personal_access_token USERNAME --name NAME --scopes api[,...] [--expires-at DATE]``."""

from __future__ import annotations

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from gitlab_core.errors import ServiceError
from gitlab_core.models import User
from gitlab_core.services import create_personal_access_token


def _one_line(error: ServiceError) -> str:
    body = error.body
    detail = body.get("message") or body.get("error") or body
    if isinstance(detail, dict):
        detail = "; ".join(f"{field} {', '.join(problems)}" for field, problems in detail.items())
    return str(detail)


class Command(BaseCommand):
    """Create a personal access token for a user and print only its secret.

    Uses the same service (and rules) as ``POST /users/:id/personal_access_tokens``.
    A bad username, scope or date exits non-zero with a one-line error on stderr and
    creates nothing.
    """

    help = "Create a personal access token for USERNAME and print its secret (only the secret) on stdout."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", required=True, help="Token name.")
        parser.add_argument("--scopes", required=True, help="Comma-separated scopes, e.g. api,read_registry.")
        parser.add_argument("--expires-at", dest="expires_at", help="YYYY-MM-DD (default: a year from today).")
        parser.add_argument("--description", default=None)

    def handle(self, *args, **options):
        user = User.objects.filter(username__iexact=options["username"]).first()
        if user is None:
            raise CommandError(f"user not found: {options['username']}")
        scopes = [scope.strip() for scope in options["scopes"].split(",") if scope.strip()]
        expires_at = None
        if options["expires_at"]:
            try:
                expires_at = dt.date.fromisoformat(options["expires_at"])
            except ValueError:
                raise CommandError(f"invalid --expires-at (want YYYY-MM-DD): {options['expires_at']}")
        try:
            _, secret = create_personal_access_token(
                user=user,
                name=options["name"],
                scopes=scopes,
                expires_at=expires_at,
                description=options["description"],
            )
        except ServiceError as exc:
            raise CommandError(_one_line(exc))
        self.stdout.write(secret)
