"""Personal-access-token authentication for ``/api/v4``.

Accepts ``PRIVATE-TOKEN``, ``Authorization: Bearer`` and ``?private_token=``. An unknown,
revoked or expired token is a 401 in GitLab's shape; a blocked user is a 403. Scope
enforcement (``read_api`` is read-only, registry scopes have no API access) happens in
``gitlab_core.api.views.ApiView`` because it depends on the method and route.
"""

from __future__ import annotations

import hmac

from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from gitlab_core import tokens
from gitlab_core.errors import ServiceError, unauthorized
from gitlab_core.models import PersonalAccessToken

# last_used_at is written at most this often per token, not on every request.
LAST_USED_RESOLUTION_SECONDS = 600


def token_from_request(request) -> str | None:
    header = request.META.get("HTTP_PRIVATE_TOKEN")
    if header:
        return header.strip()
    auth = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    query = request.GET.get("private_token")
    return query.strip() if query else None


def find_personal_access_token(secret: str) -> PersonalAccessToken | None:
    """The token whose digest matches ``secret``, compared in constant time."""
    wanted = tokens.digest(secret)
    token = PersonalAccessToken.objects.select_related("user").filter(token_digest=wanted).first()
    if token is None or not hmac.compare_digest(token.token_digest, wanted):
        return None
    return token


def touch_last_used(token: PersonalAccessToken) -> None:
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > LAST_USED_RESOLUTION_SECONDS:
        PersonalAccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now


class TokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        secret = token_from_request(request)
        if secret is None:
            return None
        token = find_personal_access_token(secret)
        if token is None:
            raise ServiceError(401, {"error": "invalid_token", "error_description": "Bad Access Token."})
        if token.revoked:
            raise ServiceError(
                401,
                {
                    "error": "invalid_token",
                    "error_description": "Token was revoked. You have to re-authorize from the user.",
                },
            )
        if token.expired:
            raise ServiceError(
                401,
                {
                    "error": "invalid_token",
                    "error_description": "Token is expired. You can either do re-authorization or token refresh.",
                },
            )
        if not token.user.can_log_in:
            raise ServiceError(403, {"message": "403 Forbidden - Your account has been blocked."})
        touch_last_used(token)
        return token.user, token

    def authenticate_header(self, request):
        return 'Bearer realm="GitLab"'


__all__ = ["TokenAuthentication", "find_personal_access_token", "token_from_request", "unauthorized"]
