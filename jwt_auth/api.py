"""``/user/registry_refresh_tokens``: the caller's refresh tokens of the registry realm.

GitLab has no refresh tokens for its registry, so this route is ours. A user lists the
refresh tokens issued for their personal access tokens and password (never the secret)
and revokes one; administrators see everyone's in the admin.
"""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core.api.format import iso
from gitlab_core.api.views import ApiView
from gitlab_core.errors import not_found
from jwt_auth import refresh_tokens
from jwt_auth.models import RefreshToken


def refresh_token_entity(token: RefreshToken) -> dict:
    return {
        "id": token.pk,
        "credential_type": token.credential_type,
        "personal_access_token_id": token.personal_access_token_id,
        "client_id": token.client_id,
        "created_at": iso(token.created_at),
        "expires_at": iso(token.expires_at),
        "last_used_at": iso(token.last_used_at),
    }


class RefreshTokensView(ApiView):
    def get(self, request):
        return self.paginated(refresh_tokens.list_for_user(self.require_user()), refresh_token_entity)


class RefreshTokenView(ApiView):
    def delete(self, request, token_id: str):
        user = self.require_user()
        pk = self.int_id(token_id)
        token = refresh_tokens.list_for_user(user).filter(pk=pk).first() if pk else None
        if token is None:
            raise not_found("Refresh token")
        refresh_tokens.revoke(token)
        return Response(status=204)
