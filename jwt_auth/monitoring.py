"""This app's part of readiness: the signing key check (registered by
``JwtAuthConfig.ready``)."""

from __future__ import annotations

from gitlab_core.health import CheckFailed
from jwt_auth.keys import KeyConfigurationError, signing_key


def check_signing_key() -> dict:
    """The signing key loads and matches its certificate; shows its kid and algorithm."""
    try:
        key = signing_key()
    except KeyConfigurationError as exc:
        raise CheckFailed(
            "the token signing key cannot be loaded: fix REGISTRY_KEY_PATH or write a key with manage.py registry_keys",
            detail=str(exc),
        ) from exc
    return {"kid": key.kid, "algorithm": key.algorithm}
