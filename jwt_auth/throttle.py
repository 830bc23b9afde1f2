"""The failed-authentication ban of ``/jwt/auth``.

Repeated bad credentials for one (client address, login) pair are refused for a while,
so that guessing is slow without locking out anyone else: other clients using the same
login (behind the same load balancer, ``TRUSTED_PROXIES`` tells them apart) and other
logins from the same address (a NAT or a CI runner host). The rule and its state are
``gitlab_core.login_failures`` (shared with the admin sign-in lockout): the login is
canonical (``Alice``, ``alice`` and alice's email count together), each failure is
counted atomically in a table, and ``manage.py realm_bans`` lists and lifts bans.

Settings: ``AUTH_BAN_ENABLED``, ``AUTH_BAN_MAX_RETRY`` failures within
``AUTH_BAN_FIND_TIME`` seconds ban for ``AUTH_BAN_TIME`` seconds;
``AUTH_BAN_IP_ALLOWLIST`` (addresses or networks) and the ``gitlab-ci-token`` login are
never counted. A banned pair gets GitLab's answer: 403, plain text ``BANNED_MESSAGE``.
"""

from __future__ import annotations

from django.conf import settings

from gitlab_core import login_failures
from gitlab_core.client_address import in_networks
from gitlab_core.db import fetch_all
from gitlab_core.models import LoginFailures
from jwt_auth.credentials import CI_JOB_LOGIN

BANNED_MESSAGE = "Too many failed authentication attempts from this IP"


def policy() -> login_failures.Policy:
    return login_failures.Policy(
        kind=LoginFailures.Kind.REALM,
        max_failures=settings.AUTH_BAN_MAX_RETRY,
        find_time=settings.AUTH_BAN_FIND_TIME,
        ban_time=settings.AUTH_BAN_TIME,
    )


def _exempt(ip: str, login: str) -> bool:
    if not settings.AUTH_BAN_ENABLED or login == CI_JOB_LOGIN:
        return True
    return in_networks(ip, settings.AUTH_BAN_IP_ALLOWLIST)


def check(*, ip: str, login: str) -> tuple[bool, bool]:
    """``(banned, has_failures)`` for this (address, login), in one statement."""
    statement = check_statement(ip=ip, login=login)
    if statement is None:
        return False, False
    sql, params, _width = statement
    return state_of(fetch_all(sql, params))


def check_statement(*, ip: str, login: str) -> tuple[str, list, int] | None:
    """``check``'s statement (``gitlab_core.login_failures.check_statement``), for a caller
    that reads it beside another lookup; None when this pair is never counted."""
    if _exempt(ip, login):
        return None
    return login_failures.check_statement(policy(), address=ip, login=login)


def state_of(rows: list[tuple]) -> tuple[bool, bool]:
    """``(banned, has_failures)`` from ``check_statement``'s rows."""
    state = login_failures.state_of(rows)
    return state.banned, state.failures > 0


def record_failure(*, ip: str, login: str) -> bool:
    """Count a failed attempt; ban when the limit is reached. Returns True if now banned."""
    if _exempt(ip, login):
        return False
    return login_failures.record_failure(policy(), address=ip, login=login)


def record_success(*, ip: str, login: str) -> None:
    """A successful authentication clears the failure count of this (address, login).

    Callers skip this when ``check`` (or ``state_of``) found no failures (saves a write
    per request).
    """
    if _exempt(ip, login):
        return
    login_failures.record_success(policy(), address=ip, login=login)
