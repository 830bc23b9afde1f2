"""Secrets for tokens: generation and the digest that is stored instead of them.

Secrets carry 160+ bits of randomness, so a plain SHA-256 digest is a safe stored
form (no slow hash is needed) and it lets a lookup go straight to one indexed row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

PAT_PREFIX = "glpat-"
DEPLOY_TOKEN_PREFIX = "gldt-"
CI_JOB_TOKEN_PREFIX = "glcbt-"
# Refresh tokens of the registry realm (``offline_token``).
REGISTRY_REFRESH_TOKEN_PREFIX = "glrrt-"


def generate_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(24)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def digests_match(stored: str, secret: str) -> bool:
    """Constant-time comparison of a stored digest and a presented secret."""
    return hmac.compare_digest(stored, digest(secret))
