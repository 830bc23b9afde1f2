"""The failed-authentication ban of ``/jwt/auth``.

Repeated bad credentials for one (client IP, login) pair are refused for a while, so
that guessing is slow without locking out the other users behind the same IP (a NAT or
a CI runner host). State lives in the Django cache (Redis in production), used through
its public API only. The login is hashed in the key: keys may be listed by operators,
and a mistyped login can be a secret pasted into the wrong field.

Counting is ``add(counter, 0, FIND_TIME)`` then ``incr(counter)``: atomic on Redis, where
the counter also keeps the window's expiry. Django's database cache implements ``incr``
as a read then a write with its default timeout: there, concurrent failures can be
counted once, and each failure re-arms the counter for that timeout (300 s).

Settings: ``AUTH_BAN_ENABLED``, ``AUTH_BAN_MAX_RETRY`` failures within
``AUTH_BAN_FIND_TIME`` seconds ban for ``AUTH_BAN_TIME`` seconds;
``AUTH_BAN_IP_ALLOWLIST`` (addresses or networks) and the ``gitlab-ci-token`` login are
never counted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache

from jwt_auth.credentials import CI_JOB_LOGIN

logger = logging.getLogger(__name__)

BANNED_MESSAGE = "Too many failed authentication attempts from this IP"


@lru_cache(maxsize=16)
def _networks(allowlist: tuple[str, ...]) -> tuple:
    networks = []
    for entry in allowlist:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            logger.warning("ignoring invalid AUTH_BAN_IP_ALLOWLIST entry", extra={"entry": entry})
    return tuple(networks)


def _exempt(ip: str, login: str) -> bool:
    if not settings.AUTH_BAN_ENABLED or login == CI_JOB_LOGIN:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.AUTH_BAN_IP_ALLOWLIST)))


def _keys(ip: str, login: str) -> tuple[str, str]:
    who = hashlib.sha256(f"{ip}\0{login}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"jwt_auth:auth_failures:{who}", f"jwt_auth:auth_ban:{who}"


def check(*, ip: str, login: str) -> tuple[bool, bool]:
    """``(banned, has_failures)`` for this (IP, login), in one cache round trip."""
    if _exempt(ip, login):
        return False, False
    counter, ban = _keys(ip, login)
    found = cache.get_many([counter, ban])
    return ban in found, counter in found


def record_failure(*, ip: str, login: str) -> bool:
    """Count a failed attempt; ban when the limit is reached. Returns True if now banned."""
    if _exempt(ip, login):
        return False
    counter, ban = _keys(ip, login)
    # add() starts the window only when no window is open (fixed window of FIND_TIME).
    cache.add(counter, 0, timeout=settings.AUTH_BAN_FIND_TIME)
    try:
        failures = cache.incr(counter)
    except ValueError:
        # The window expired between add() and incr(): this failure opens a new one.
        cache.set(counter, 1, timeout=settings.AUTH_BAN_FIND_TIME)
        failures = 1
    if failures >= settings.AUTH_BAN_MAX_RETRY:
        cache.set(ban, 1, timeout=settings.AUTH_BAN_TIME)
        cache.delete(counter)
        logger.warning("jwt auth ban started", extra={"client_ip": ip, "failures": failures})
        return True
    return False


def record_success(*, ip: str, login: str) -> None:
    """A successful authentication clears the failure count of this (IP, login).

    Callers skip this when ``check`` found no failures (saves a cache write per request).
    """
    if _exempt(ip, login):
        return
    cache.delete(_keys(ip, login)[0])
