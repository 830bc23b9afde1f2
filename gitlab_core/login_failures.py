"""Failed sign-ins per (client address, canonical login), and the bans they lead to.

The one rule behind the realm's failed-login ban (``jwt_auth.throttle``) and the admin
sign-in lockout (``gitlab_core.admin_bans``): ``max_failures`` failures of one pair within
``find_time`` seconds ban that pair for ``ban_time`` seconds, its right password
included. Other addresses using the same login, and other logins from the same address,
are not affected. The client address is ``gitlab_core.client_address``'s.

The login is canonical, so that spelling it differently does not start a fresh count: a
login naming a user (its username in any case, or its email address) is that user's
username; any other login is case-folded as typed.

State is the ``LoginFailures`` table, one row per pair that failed recently, changed
with single conditional ``UPDATE`` statements (``failures = failures + 1``): concurrent
failures are each counted on SQLite and PostgreSQL alike, whatever cache backend is
configured, and a Redis outage does not touch it. Rows whose window and ban are over
are deleted whenever a new pair starts counting, so the table holds only live pairs.
Bans and lifts are logged (``login ban started`` / ``login ban lifted``) and audited
(``login_ban_started`` / ``login_ban_lifted``); single failures are only counted.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from gitlab_core import audit
from gitlab_core.client_address import parse_address
from gitlab_core.db import RowLoader, fetch_all
from gitlab_core.models import LoginFailures, User

logger = logging.getLogger(__name__)

MAX_LOGIN_LENGTH = 255


@dataclass(frozen=True)
class Policy:
    kind: str
    max_failures: int
    find_time: int
    ban_time: int


@dataclass(frozen=True)
class State:
    banned_until: dt.datetime | None
    failures: int

    @property
    def banned(self) -> bool:
        return self.banned_until is not None


NOT_COUNTED = State(banned_until=None, failures=0)


def _text(login: str) -> str:
    # PostgreSQL text holds no NUL; a login longer than any username names nobody.
    return login.replace("\x00", "\ufffd")[:MAX_LOGIN_LENGTH]


def _username_sql(by_email: bool) -> str:
    """The username a login names, as SQL (parameters: the login lower-cased, twice when
    ``by_email``). Usernames are unique ignoring case and indexed as
    ``lower(username)``; only a login with ``@`` can be an email address (rarely typed:
    no index needed)."""
    named = "lower(u.username) = %s" + (" OR lower(u.email) = %s" if by_email else "")
    return f"SELECT u.username FROM {User._meta.db_table} u WHERE {named} ORDER BY u.id LIMIT 1"


def _username_params(text: str) -> list[str]:
    return [text.lower(), text.lower()] if "@" in text else [text.lower()]


def canonical_login(login: str) -> str:
    """The username ``login`` names (by username in any case, or email), else ``login``
    case-folded."""
    text = _text(login)
    rows = fetch_all(_username_sql("@" in text), _username_params(text))
    return rows[0][0] if rows else text.casefold()[:MAX_LOGIN_LENGTH]


def _pair(policy: Policy, address: str) -> QuerySet:
    return LoginFailures.objects.filter(kind=policy.kind, address=address[:64])


def check(policy: Policy, *, address: str, login: str) -> State:
    """This pair's ban and current failure count, in one statement (the login is made
    canonical inside it). It runs on every realm request: a fixed SQL text, prepared on
    PostgreSQL (building it with the ORM cost more than a realm decision's other work)."""
    sql, params, _width = check_statement(policy, address=address, login=login)
    return state_of(fetch_all(sql, params))


def check_statement(policy: Policy, *, address: str, login: str) -> tuple[str, list, int]:
    """``check``'s statement as (text, parameters, number of columns), for a caller that
    reads it beside another lookup (``gitlab_core.db.fetch_side_by_side``); ``state_of``
    reads its rows. Its rows: the pair's under the login as typed (case-folded) and
    under the username it names."""
    text = _text(login)
    params = [policy.kind, address[:64], text.casefold()[:MAX_LOGIN_LENGTH], *_username_params(text)]
    return _check_sql("@" in text), params, len(_check_loader())


def state_of(rows: list[tuple]) -> State:
    """The ban and failure count that ``check_statement``'s rows tell."""
    loader = _check_loader()
    now = timezone.now()
    banned_until, failures = None, 0
    for row in rows:
        pair = loader.load(row)
        if pair.banned_until is not None and pair.banned_until > now:
            banned_until = pair.banned_until
        if pair.window_ends_at > now:
            failures = max(failures, pair.failures)
    return State(banned_until=banned_until, failures=failures)


@functools.cache
def _check_loader() -> RowLoader:
    return RowLoader(LoginFailures, frozenset({"id", "banned_until", "failures", "window_ends_at"}), "f")


@functools.cache
def _check_sql(by_email: bool) -> str:
    return (
        f"SELECT {_check_loader().columns} FROM {LoginFailures._meta.db_table} f "
        f"WHERE f.kind = %s AND f.address = %s AND (f.login = %s OR f.login = ({_username_sql(by_email)}))"
    )


def record_failure(policy: Policy, *, address: str, login: str) -> bool:
    """Count a failure of this pair; ban it when the count reaches ``max_failures``.
    Returns True when the pair is banned now."""
    canonical = canonical_login(login)
    rows = _pair(policy, address).filter(login=canonical)
    now = timezone.now()
    window_ends_at = now + dt.timedelta(seconds=policy.find_time)
    for _attempt in range(3):
        # Within the pair's window: one more. A ban keeps the window open until it ends.
        if rows.filter(window_ends_at__gt=now).update(failures=F("failures") + 1):
            break
        # The window (and any ban) is over: this failure opens a new one.
        if rows.filter(window_ends_at__lte=now).update(failures=1, window_ends_at=window_ends_at, banned_until=None):
            break
        _prune(now)
        try:
            with transaction.atomic():
                LoginFailures.objects.create(
                    kind=policy.kind, address=address[:64], login=canonical, failures=1, window_ends_at=window_ends_at
                )
            break
        except IntegrityError:
            continue  # another request created the row meanwhile: count on it
    banned_until = now + dt.timedelta(seconds=policy.ban_time)
    with transaction.atomic():
        started = rows.filter(failures__gte=policy.max_failures, banned_until__isnull=True).update(
            banned_until=banned_until, window_ends_at=banned_until
        )
        if started:
            audit.record(
                "login_ban_started",
                entity=audit.INSTANCE,
                target=_ban_target(policy.kind, address, canonical),
                message=f"{_KIND_NAMES[policy.kind]} banned until {banned_until.isoformat()} "
                f"after {policy.max_failures} failed attempts",
                ip_address=address,
            )
    if started:
        # Exactly one request starts a ban; after it the count starts again.
        logger.warning(
            "login ban started",
            extra={
                "kind": policy.kind,
                "client_address": address,
                "login": canonical,
                "failures": policy.max_failures,
                "banned_until": banned_until.isoformat(),
            },
        )
        return True
    return rows.filter(banned_until__gt=now).exists()


def record_success(policy: Policy, *, address: str, login: str) -> None:
    """A success clears this pair's failures (never a ban: a banned pair is refused
    before its credentials are checked). Callers skip it when ``check`` counted none."""
    now = timezone.now()
    _pair(policy, address).filter(login=canonical_login(login)).filter(
        Q(banned_until__isnull=True) | Q(banned_until__lte=now)
    ).delete()


def _prune(now: dt.datetime) -> None:
    # Bounded by the live pairs: only a new pair's first failure gets here.
    LoginFailures.objects.filter(window_ends_at__lte=now).filter(
        Q(banned_until__isnull=True) | Q(banned_until__lte=now)
    ).delete()


def active_bans(kind: str | None = None) -> QuerySet:
    """Bans in force, newest first (``kind``: ``realm``, ``admin`` or None for both)."""
    rows = LoginFailures.objects.filter(banned_until__gt=timezone.now())
    if kind is not None:
        rows = rows.filter(kind=kind)
    return rows.order_by("-banned_until", "pk")


def matching(target: str, kind: str | None = None) -> QuerySet:
    """The rows of ``target``: an IP address (every login from it) or a login (from
    every address; made canonical as when counting)."""
    rows = LoginFailures.objects.all() if kind is None else LoginFailures.objects.filter(kind=kind)
    address = parse_address(target)
    if address is not None:
        return rows.filter(address=str(address))
    return rows.filter(login__in=[canonical_login(target), _text(target).casefold()])


def lift(rows: QuerySet, *, by: str) -> list[LoginFailures]:
    """Delete ``rows`` (their bans and failure counts); the bans that were in force are
    logged as lifted by ``by`` and returned."""
    with transaction.atomic():
        lifted = list(rows.filter(banned_until__gt=timezone.now()).order_by("pk"))
        rows.delete()
        for row in lifted:
            audit.record(
                "login_ban_lifted",
                entity=audit.INSTANCE,
                target=_ban_target(row.kind, row.address, row.login),
                message=f"{_KIND_NAMES[row.kind]} ban lifted by {by}",
            )
    for row in lifted:
        logger.warning(
            "login ban lifted",
            extra={"kind": row.kind, "client_address": row.address, "login": row.login, "by": by},
        )
    return lifted


_KIND_NAMES = {LoginFailures.Kind.REALM: "Registry login", LoginFailures.Kind.ADMIN: "Admin sign-in"}


def _ban_target(kind: str, address: str, login: str) -> audit.Target:
    return audit.Target("LoginBan", None, f"{kind}: {login} from {address}")
