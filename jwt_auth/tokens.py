"""Registry JWTs: the claims distribution 2.8 checks, signed with the active key.

``iss``/``aud`` are strings and ``exp``/``nbf``/``iat`` integers (the registry refuses
an ``aud`` array or float times). The header carries the libtrust ``kid`` that 2.8
looks keys up by, and an ``x5c`` chain for registries that dropped libtrust ids.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from functools import lru_cache

import jwt
from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_migrate, post_save
from django.dispatch import receiver

from gitlab_core.models import ApplicationSettings
from gitlab_core.ttl_cache import TTLCache
from jwt_auth.keys import SigningKey, signing_key

# GitLab backdates nbf by 5 seconds against clock skew between hosts.
NOT_BEFORE_SKEW = 5
# The nested ``user`` token lives 60 seconds, as in GitLab.
USER_TOKEN_LIFETIME = 60
# A nested user token is reused for this long (it stays valid for at least 30 s more):
# signing it afresh for every request doubled the signing cost of the realm.
USER_TOKEN_REUSE = 30
_user_tokens = TTLCache(ttl=USER_TOKEN_REUSE, max_entries=10_000, max_bytes=16 * 1024 * 1024, max_item_bytes=64 * 1024)


# The token duration is read on every request but changes a few times a year: each
# process keeps it for REGISTRY_SETTINGS_CACHE_SECONDS (default 5). A change saved in
# this process applies at once; other processes pick it up within that window.
DEFAULT_SETTINGS_CACHE_SECONDS = 5


def _settings_cache_seconds() -> float:
    return getattr(settings, "REGISTRY_SETTINGS_CACHE_SECONDS", DEFAULT_SETTINGS_CACHE_SECONDS)


_lifetime = TTLCache(ttl=_settings_cache_seconds, max_entries=1, max_bytes=1024)


def token_lifetime_seconds() -> int:
    """The admin-set token duration (``container_registry_token_expire_delay``, minutes)."""
    seconds = _lifetime.get("seconds")
    if seconds is not None:
        return seconds
    generation = _lifetime.generation
    seconds = ApplicationSettings.current().container_registry_token_expire_delay * 60
    # Kept only once committed: a value read inside a transaction (a test case, an
    # update that may roll back) may never become the stored one; nor one read before a
    # change saved meanwhile (the generation).
    transaction.on_commit(lambda: _lifetime.set("seconds", seconds, generation=generation))
    return seconds


@receiver(post_save, sender=ApplicationSettings, dispatch_uid="jwt_auth.tokens.settings_changed")
@receiver(post_migrate, dispatch_uid="jwt_auth.tokens.database_reset")
def _settings_changed(sender, **kwargs) -> None:
    # post_migrate: also sent when a database is flushed (between transactional tests).
    # Cleared now and again at commit, so that a read racing the commit is not kept.
    _lifetime.clear()
    transaction.on_commit(_lifetime.clear)


_ALGORITHMS = jwt.algorithms.get_default_algorithms()


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _header_segment(key: SigningKey, with_x5c: bool) -> bytes:
    return _encoded_header(key.kid, key.algorithm, key.x5c if with_x5c else ())


# The header with its certificate chain is a kilobyte of JSON and base64 that never
# changes for a key: encoded once per (kid, algorithm, chain).
@lru_cache(maxsize=64)
def _encoded_header(kid: str, algorithm: str, x5c: tuple[str, ...]) -> bytes:
    header = {"alg": algorithm, "kid": kid, "typ": "JWT"}
    if x5c:
        header["x5c"] = list(x5c)
    # As PyJWT writes it: compact, keys sorted.
    return _b64url(json.dumps(header, separators=(",", ":"), sort_keys=True).encode())


def _sign(payload: dict, key: SigningKey, *, with_x5c: bool = True) -> str:
    """A compact JWS of ``payload``, as ``jwt.encode`` makes it, with the header segment
    encoded once per key; the signature is PyJWT's algorithm (RS256 or ES256)."""
    signing_input = _header_segment(key, with_x5c) + b"." + _b64url(json.dumps(payload, separators=(",", ":")).encode())
    signature = _ALGORITHMS[key.algorithm].sign(signing_input, key.private_key)
    return (signing_input + b"." + _b64url(signature)).decode()


def _base_claims(now: int, lifetime: int) -> dict:
    return {
        "jti": str(uuid.uuid4()),
        "iat": now,
        "nbf": now - NOT_BEFORE_SKEW,
        "exp": now + lifetime,
    }


def mint_registry_token(
    *,
    access: list[dict],
    subject: str | None = None,
    auth_type: str | None = None,
    user_info: dict | None = None,
    lifetime: int | None = None,
) -> tuple[str, int]:
    """Sign a registry token granting ``access`` and return ``(jwt, expires_in)``.

    ``subject`` becomes ``sub`` (left out when None). With ``auth_type`` (tokens handed
    to users) the claims also get ``auth_type`` and the nested 60-second ``user`` token
    carrying ``user_info``, as GitLab's do; tokens the service mints for itself pass
    neither. ``lifetime`` defaults to the admin-set duration.
    Raises ``KeyConfigurationError`` when no signing key is usable.
    """
    key = signing_key()
    expires_in = token_lifetime_seconds() if lifetime is None else lifetime
    now = int(time.time())
    claims = {
        "iss": settings.REGISTRY_ISSUER,
        "aud": settings.REGISTRY_SERVICE,
        **_base_claims(now, expires_in),
        "access": access,
    }
    if subject is not None:
        claims["sub"] = subject
    if auth_type is not None:
        claims["auth_type"] = auth_type
        claims["user"] = _user_token(user_info, key, now)
    return _sign(claims, key), expires_in


def _user_token(user_info: dict | None, key: SigningKey, now: int) -> str:
    cache_key = (key.kid, json.dumps(user_info, sort_keys=True))
    token = _user_tokens.get(cache_key)
    if token is not None:
        return token
    user_claims = {**_base_claims(now, USER_TOKEN_LIFETIME), "user_info": user_info}
    # Only our own event receiver reads the nested token, and it knows our keys by
    # kid: the certificate chain would double the size of every token for nothing.
    token = _sign(user_claims, key, with_x5c=False)
    _user_tokens.set(cache_key, token)
    return token


def decode_user_token(token: str) -> dict | None:
    """The ``user_info`` of a nested ``user`` token (as echoed in registry events), or
    None when its signature or lifetime does not check out."""
    from jwt_auth.keys import configured_keys

    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    for key in configured_keys():
        if key.kid == kid:
            try:
                return jwt.decode(token, key.public_key, algorithms=[key.algorithm]).get("user_info")
            except jwt.PyJWTError:
                return None
    return None
