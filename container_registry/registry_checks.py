"""Checks of the live wiring between the registry and this service (``registry_check``).

Each check says what it saw and, when it fails, what to do about it:

1. the registry at ``REGISTRY_API_URL`` answers ``/v2/`` with a token challenge for our
   service;
2. it accepts a token we sign (a 401 means its ``auth.token`` issuer, service or
   certificate bundle disagree with ours);
3. deletes are enabled (tag deletion and cleanup policies need them) and 4. it accepts
   writes (not left in read-only mode after garbage collection): both from one DELETE of
   a manifest digest nothing has, which changes nothing (``RegistryClient.delete_probe``);
5. notifications arrive: the time of the last event accepted, and whether pushes were
   granted since without any event (``registry_activity``).

With the registry's config file at hand (``config_path``, a registry on this machine),
one more check compares it with our settings and names what disagrees (issuer,
service, a certificate missing from the bundle, deletes, the notifications endpoint and
secret), and a refused token is explained by it. A check that cannot run because an
earlier one failed fails too, saying why.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import requests
from django.conf import settings

from container_registry import registry_activity
from container_registry.client import DELETES_DISABLED, READ_ONLY, WRITABLE, get_client
from container_registry.errors import RegistryError, RegistryUnauthorized
from container_registry.registry_config import config_differences, read_config
from gitlab_core.errors import ServiceError

FIX_CONFIG = "regenerate the registry's config with `manage.py registry_config` and restart the registry"
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(*, config_path: str | None = None, now: dt.datetime | None = None) -> list[Check]:
    """Every check, in order; the config file's first when ``config_path`` is given."""
    config = [check_config_file(config_path)] if config_path else []
    return config + _live_checks(config[0] if config else None, now=now)


def _live_checks(config: Check | None, *, now: dt.datetime | None) -> list[Check]:
    answers = check_answers()
    if not answers.ok:
        skipped = f"not checked: {answers.name} failed"
        return [
            answers,
            Check("registry accepts our tokens", False, skipped),
            Check("deletes enabled", False, skipped),
            Check("registry accepts writes", False, skipped),
            check_notifications(now=now),
        ]
    tokens = check_tokens(config)
    if not tokens.ok:
        skipped = f"not checked: {tokens.name} failed"
        writes = [Check("deletes enabled", False, skipped), Check("registry accepts writes", False, skipped)]
    else:
        writes = check_writes()
    return [answers, tokens, *writes, check_notifications(now=now)]


def check_answers() -> Check:
    name = "registry answers /v2/"
    url = f"{settings.REGISTRY_API_URL.rstrip('/')}/v2/"
    try:
        response = requests.get(url, timeout=settings.REGISTRY_REQUEST_TIMEOUT)
    except requests.RequestException as exc:
        return Check(
            name,
            False,
            f"GET {url} failed: {exc.__class__.__name__}",
            "start the registry, or set REGISTRY_API_URL to the address it listens on",
        )
    challenge = response.headers.get("Www-Authenticate", "")
    params = dict(_CHALLENGE_PARAM.findall(challenge))
    if response.status_code != 401 or not challenge.lower().startswith("bearer"):
        return Check(
            name,
            False,
            f"GET {url} answered {response.status_code} without a token challenge",
            f"the registry must use token auth (auth.token): {FIX_CONFIG}",
        )
    realm, service = params.get("realm", ""), params.get("service", "")
    detail = f"{url} challenges with realm {realm}, service {service}"
    if service != settings.REGISTRY_SERVICE:
        return Check(name, False, f"{detail}; ours is {settings.REGISTRY_SERVICE}", FIX_CONFIG)
    return Check(name, True, detail)


def check_config_file(path: str) -> Check:
    name = "config file agrees"
    try:
        problems = config_differences(read_config(path))
    except ServiceError as exc:
        return Check(name, False, exc.body["message"], "give the registry's config.yml with --config")
    if problems:
        return Check(name, False, f"{path}: {'; '.join(problems)}", FIX_CONFIG)
    return Check(name, True, f"{path} matches our issuer, service, keys, deletes and notifications")


def check_tokens(config: Check | None = None) -> Check:
    from jwt_auth.keys import signing_key

    name = "registry accepts our tokens"
    key = signing_key()
    ours = f"issuer {settings.REGISTRY_ISSUER}, service {settings.REGISTRY_SERVICE}, key {key.kid}"
    try:
        get_client().ping()
    except RegistryUnauthorized:
        if config is not None and not config.ok:
            cause = f"its config file says why: {config.detail}"
        else:
            cause = (
                "its auth.token issuer or rootcertbundle disagree with ours (the service matches its "
                "challenge); its log says which ('token from untrusted issuer', 'untrusted key'), "
                "and so does `registry_check --config PATH` on the registry's machine"
            )
        return Check(name, False, f"the registry refused a token we signed ({ours}): {cause}", FIX_CONFIG)
    except RegistryError as exc:
        return Check(name, False, f"GET /v2/ with our token failed: {exc}", "see the registry's log")
    return Check(name, True, f"a token we signed was accepted ({ours})")


def check_writes() -> list[Check]:
    try:
        state = get_client().delete_probe()
    except RegistryError as exc:
        failed = f"the delete probe failed: {exc}"
        return [Check("deletes enabled", False, failed), Check("registry accepts writes", False, failed)]
    deletes = {
        WRITABLE: Check("deletes enabled", True, "a delete of an unknown manifest answered 404"),
        DELETES_DISABLED: Check(
            "deletes enabled",
            False,
            "the registry answers deletes with 405 UNSUPPORTED: tag deletion and cleanup policies fail",
            f"set storage.delete.enabled: true ({FIX_CONFIG})",
        ),
        READ_ONLY: Check("deletes enabled", False, "not checked: the registry is read-only"),
    }[state]
    if state == READ_ONLY:
        writes = Check(
            "registry accepts writes",
            False,
            "the registry is in read-only mode (storage.maintenance.readonly): pushes fail",
            "once garbage collection is done, regenerate the config without --read-only and restart the registry",
        )
    else:
        writes = Check("registry accepts writes", True, "not in read-only mode")
    return [deletes, writes]


def check_notifications(*, now: dt.datetime | None = None) -> Check:
    name = "notifications arrive"
    if not settings.REGISTRY_NOTIFICATION_SECRET:
        return Check(
            name,
            False,
            "REGISTRY_NOTIFICATION_SECRET is empty: the receiver refuses every event",
            f"set it to a long random value, then {FIX_CONFIG}",
        )
    received = registry_activity.last_event_received_at()
    granted = registry_activity.last_push_granted_at()
    detail = f"last event received {_when(received)}, last push granted {_when(granted)}"
    lost_since = registry_activity.pushes_without_events(now=now)
    if lost_since is not None:
        return Check(
            name,
            False,
            f"{detail}: a push was granted and no event followed",
            "the registry's notifications do not reach us: check the URL and the Authorization "
            "secret in its notifications.endpoints (the registry logs each failed delivery); "
            f"{FIX_CONFIG}",
        )
    return Check(name, True, detail)


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "never (since the cache was last emptied)"
