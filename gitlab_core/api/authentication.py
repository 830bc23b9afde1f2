"""Personal-access-token authentication for ``/api/v4``.

Accepts ``PRIVATE-TOKEN``, ``Authorization: Bearer`` and ``?private_token=``. An unknown,
revoked or expired token is a 401 in GitLab's shape; a blocked user is a 403. Scope
enforcement (``read_api`` is read-only, registry scopes have no API access) and ``Sudo``
happen in ``gitlab_core.api.views.ApiView`` because they depend on the method and route.
CI job tokens are authenticated by ``projects`` (which owns jobs) and handed over as a
``JobTokenAuth``.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication

from gitlab_core.errors import ServiceError, unauthorized
from gitlab_core.token_lookup import find_personal_access_token, touch_last_used


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


@dataclass(frozen=True)
class JobTokenAuth:
    """``request.auth`` of a call made with a running CI job's token: the job acts as its
    user, on the registry endpoints of its own project only."""

    job_id: int
    project_id: int


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


__all__ = ["JobTokenAuth", "TokenAuthentication", "find_personal_access_token", "token_from_request", "unauthorized"]
