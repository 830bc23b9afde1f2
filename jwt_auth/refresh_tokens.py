"""Refresh tokens: issued by the realm for ``offline_token=true`` (``GET``) or
``access_type=offline`` (``POST`` with ``grant_type=password``), and accepted by
``POST /jwt/auth`` with ``grant_type=refresh_token`` instead of credentials.

A refresh token is a stand-in for the credential it came from, never more: using one
rebuilds the caller through the same functions that check that credential
(``jwt_auth.credentials``), so a blocked user, a revoked or expired token, a changed
password or a turned-off password login end it at once. Stored as a SHA-256 digest
(the secret has 192 random bits) and looked up by it; compared in constant time.
"""

from __future__ import annotations

import hmac
from datetime import timedelta

from django.dispatch import receiver
from django.utils import timezone
from django.utils.crypto import salted_hmac

from gitlab_core import tokens
from gitlab_core.models import MAX_REFRESH_TOKEN_DAYS, ApplicationSettings, User
from gitlab_core.signals import password_rehashed
from gitlab_core.text import clean_text
from jwt_auth import credentials
from jwt_auth.credentials import AuthResult
from jwt_auth.models import RefreshToken

# Longer than any secret we issue; longer input is refused before hashing.
MAX_SECRET_LENGTH = 128
MAX_CLIENT_ID_LENGTH = 255
# Refresh tokens kept per user (or deploy token): every ``docker login`` asks for one, so
# issuing a new one beyond this removes the oldest.
MAX_PER_OWNER = 100


def lifetime() -> timedelta:
    days = ApplicationSettings.current().container_registry_refresh_token_days
    return timedelta(days=min(days, MAX_REFRESH_TOKEN_DAYS))


def _password_fingerprint(user: User) -> str:
    return _fingerprint(user.password)


def _fingerprint(password_hash: str) -> str:
    # Keyed, so that the stored value says nothing about the password hash.
    return salted_hmac("jwt_auth.refresh_tokens.password", password_hash, algorithm="sha256").hexdigest()


@receiver(password_rehashed, dispatch_uid="jwt_auth.refresh_tokens.rehashed")
def _password_rehashed(sender, *, user: User, old_hash: str, **kwargs) -> None:
    """The same password under a new hash (Django's work factor went up): the refresh
    tokens issued for it stay valid."""
    RefreshToken.objects.filter(user=user, password_fingerprint=_fingerprint(old_hash)).update(
        password_fingerprint=_password_fingerprint(user)
    )


def issue(auth: AuthResult, *, client_id: str = "") -> str | None:
    """A new refresh token for the credential behind ``auth``; None when it cannot have
    one: anonymous callers, CI jobs (their token ends with the job), or refresh tokens
    turned off (lifetime 0)."""
    validity = lifetime()
    if validity <= timedelta(0):
        return None
    if auth.personal_access_token is not None:
        origin = {
            "credential_type": RefreshToken.Credential.PERSONAL_ACCESS_TOKEN,
            "user": auth.user,
            "personal_access_token": auth.personal_access_token,
        }
    elif auth.deploy_token is not None:
        origin = {"credential_type": RefreshToken.Credential.DEPLOY_TOKEN, "deploy_token": auth.deploy_token}
    elif auth.auth_type == RefreshToken.Credential.PASSWORD and auth.user is not None:
        origin = {
            "credential_type": RefreshToken.Credential.PASSWORD,
            "user": auth.user,
            "password_fingerprint": _password_fingerprint(auth.user),
        }
    else:
        return None
    secret = tokens.generate_secret(tokens.REGISTRY_REFRESH_TOKEN_PREFIX)
    RefreshToken.objects.create(
        token_digest=tokens.digest(secret),
        expires_at=timezone.now() + validity,
        client_id=client_id[:MAX_CLIENT_ID_LENGTH] if clean_text(client_id) else "",
        **origin,
    )
    _drop_beyond_limit({"deploy_token": auth.deploy_token} if "deploy_token" in origin else {"user": auth.user})
    return secret


def _drop_beyond_limit(owner: dict) -> None:
    owned = RefreshToken.objects.filter(**owner)
    oldest_extra = owned.order_by("-id").values_list("id", flat=True)[MAX_PER_OWNER : MAX_PER_OWNER + 1]
    if oldest_extra:
        owned.filter(id__lte=oldest_extra[0]).delete()


def authenticate(secret: str) -> AuthResult | None:
    """The caller a refresh token stands for, or None when it is unknown, expired, or
    its credential no longer works."""
    if not secret.startswith(tokens.REGISTRY_REFRESH_TOKEN_PREFIX) or len(secret) > MAX_SECRET_LENGTH:
        return None
    if not clean_text(secret):
        return None
    wanted = tokens.digest(secret)
    row = (
        RefreshToken.objects.unexpired()
        .select_related("user", "personal_access_token__user", "deploy_token__project")
        .filter(token_digest=wanted)
        .first()
    )
    if row is None or not hmac.compare_digest(row.token_digest, wanted):
        return None
    result = _credential_result(row)
    if result is not None:
        RefreshToken.objects.filter(pk=row.pk).update(last_used_at=timezone.now())
    return result


def _credential_result(row: RefreshToken) -> AuthResult | None:
    if row.credential_type == RefreshToken.Credential.PERSONAL_ACCESS_TOKEN:
        token = row.personal_access_token
        if token is None or token.user_id != row.user_id:
            return None
        return credentials.personal_access_token_result(token)
    if row.credential_type == RefreshToken.Credential.DEPLOY_TOKEN:
        return None if row.deploy_token is None else credentials.deploy_token_result(row.deploy_token)
    if row.credential_type == RefreshToken.Credential.PASSWORD and row.user is not None:
        if not hmac.compare_digest(row.password_fingerprint, _password_fingerprint(row.user)):
            return None
        return credentials.password_user_result(row.user)
    return None


def list_for_user(user: User):
    """The user's refresh tokens that still work by date, newest first."""
    return RefreshToken.objects.unexpired().filter(user=user).order_by("-id")


def revoke(token: RefreshToken) -> None:
    RefreshToken.objects.filter(pk=token.pk).delete()


def delete_expired() -> int:
    """Remove refresh tokens past their date (they are refused anyway); returns how many."""
    deleted, _ = RefreshToken.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
