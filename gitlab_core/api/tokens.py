"""``/personal_access_tokens``: list, get, rotate and revoke (``:id`` or ``self``)."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core import selectors, services
from gitlab_core.api import entities
from gitlab_core.api.errors import insufficient_scope
from gitlab_core.api.views import ApiView
from gitlab_core.errors import not_found, unauthorized
from gitlab_core.models import PersonalAccessToken

SELF = "self"


class _TokenView(ApiView):
    def find_token(self, raw_id: str) -> PersonalAccessToken:
        """The token named by the route; a non-admin only ever finds their own (else 401)."""
        viewer = self.require_user()
        if raw_id == SELF:
            return self.token
        token_id = self.int_id(raw_id)
        token = PersonalAccessToken.objects.filter(pk=token_id).first() if token_id else None
        if viewer.is_admin:
            if token is None:
                raise not_found()
            return token
        if token is None or token.user_id != viewer.pk:
            raise unauthorized()
        return token


class PersonalAccessTokensView(_TokenView):
    def get(self, request):
        viewer = self.require_user()
        params = self.params()
        user_id = params.int("user_id", minimum=1)
        filters = {
            "revoked": params.bool("revoked"),
            "state": params.choice("state", ("active", "inactive")),
            "search": params.str("search", max_length=255),
        }
        params.check()
        if not viewer.is_admin:
            if user_id is not None and user_id != viewer.pk:
                raise unauthorized()
            user_id = viewer.pk
        tokens = selectors.list_personal_access_tokens(user_id=user_id, **filters)
        return self.paginated(tokens, entities.personal_access_token)


class PersonalAccessTokenView(_TokenView):
    def get(self, request, token_id: str):
        return Response(entities.personal_access_token(self.find_token(token_id)))

    def delete(self, request, token_id: str):
        services.revoke_personal_access_token(token=self.find_token(token_id))
        return Response(status=204)


class RotatePersonalAccessTokenView(_TokenView):
    # A token with only ``self_rotate`` may rotate itself, nothing else (checked below).
    allow_self_rotate = True

    def post(self, request, token_id: str):
        if token_id != SELF and self.token is not None and "api" not in self.token.scopes:
            raise insufficient_scope()
        token = self.find_token(token_id)
        params = self.params()
        expires_at = params.date("expires_at")
        params.check()
        successor, secret = services.rotate_personal_access_token(token=token, expires_at=expires_at)
        return Response(entities.personal_access_token(successor, secret))
