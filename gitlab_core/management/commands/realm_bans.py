"""``manage.py realm_bans [--kind realm|admin|all] [--lift ADDRESS_OR_LOGIN]``."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from gitlab_core import login_failures

KINDS = {"realm": "realm", "admin": "admin", "all": None}
MAX_LISTED = 1000


def _shown(text: str) -> str:
    # A login is whatever a client typed: no control character reaches the terminal.
    return "".join(c if c.isprintable() and c != "\t" else repr(c)[1:-1] for c in text)


class Command(BaseCommand):
    """List the failed-login bans in force, or lift them.

    ``realm`` (the default): bans of ``/jwt/auth`` (``docker login``); ``admin``: admin
    sign-in lockouts; ``all``: both. Lifting takes an IP address (every login banned
    from it) or a login (from every address; ``Alice``, ``alice`` and alice's email are
    the same login), clears the failure counts of what it matches, logs each lifted ban
    and prints how many were lifted (0 is not an error).
    """

    help = "List failed-login bans (address, login, failures, until), or lift them with --lift."

    def add_arguments(self, parser):
        parser.add_argument("--kind", choices=sorted(KINDS), default="realm", help="Which bans (default: realm).")
        parser.add_argument("--lift", metavar="ADDRESS_OR_LOGIN", help="Lift the bans of this address or login.")

    def handle(self, *args, **options):
        kind = KINDS[options["kind"]]
        if options["lift"]:
            target = options["lift"]
            lifted = login_failures.lift(login_failures.matching(target, kind), by="command")
            for row in lifted:
                self.stdout.write(f"lifted\t{row.kind}\t{row.address}\t{_shown(row.login)}")
            self.stdout.write(f"{len(lifted)} ban(s) lifted for {_shown(target)!r}.")
            return
        bans = login_failures.active_bans(kind)
        total = bans.count()
        self.stdout.write("kind\taddress\tlogin\tfailures\tuntil")
        for row in bans[:MAX_LISTED]:
            until = row.banned_until.isoformat(timespec="seconds")
            self.stdout.write(f"{row.kind}\t{row.address}\t{_shown(row.login)}\t{row.failures}\t{until}")
        shown = f" ({MAX_LISTED} shown)" if total > MAX_LISTED else ""
        self.stdout.write(f"{total} ban(s) in force{shown}.")
