"""Deploy tokens: ``/projects/:id/deploy_tokens`` (Maintainer+), ``/groups/:id/deploy_tokens``
(Owners) and the administrators' ``/deploy_tokens``."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core.api.views import ApiView
from gitlab_core.errors import forbidden, invalid_params
from projects import entities, permissions, selectors, services
from projects.models import DEPLOY_TOKEN_SCOPES, Namespace, Project


class _DeployTokenView(ApiView):
    # "projects" or "groups", set by the URL configuration.
    source = "projects"

    def managed_owner(self, raw_id: str) -> Project | Namespace:
        """The project or group whose tokens the caller may manage; 404 when it cannot
        see it, 403 when it may not manage them."""
        user = self.require_user()
        if self.source == "projects":
            owner = selectors.find_project(user, self.decode_id(raw_id))
            allowed = permissions.can(user, permissions.ADMIN_DEPLOY_TOKENS, owner)
        else:
            owner = selectors.find_group(user, self.decode_id(raw_id))
            allowed = permissions.can(user, permissions.ADMIN_GROUP_DEPLOY_TOKENS, owner)
        if not allowed:
            raise forbidden()
        return owner

    def list_tokens(self, owner: Project | Namespace | None) -> Response:
        params = self.params()
        active = params.bool("active")
        params.check()
        return self.paginated(selectors.list_deploy_tokens(owner, active=active), entities.deploy_token)


class AllDeployTokensView(_DeployTokenView):
    """``GET /deploy_tokens``: every deploy token of the instance (administrators)."""

    def get(self, request):
        if not self.require_user().is_admin:
            raise forbidden()
        return self.list_tokens(None)


class DeployTokensView(_DeployTokenView):
    def get(self, request, owner_id: str):
        return self.list_tokens(self.managed_owner(owner_id))

    def post(self, request, owner_id: str):
        owner = self.managed_owner(owner_id)
        params = self.params()
        name = params.str("name", required=True, max_length=255, allow_blank=False)
        scopes = params.array("scopes", required=True)
        expires_at = params.datetime("expires_at")
        username = params.str("username", max_length=255, nullable=True)
        params.check()
        if any(scope not in DEPLOY_TOKEN_SCOPES for scope in scopes):
            raise invalid_params("scopes does not have a valid value")
        token, secret = services.create_deploy_token(
            owner=owner, name=name, scopes=scopes, expires_at=expires_at, username=username or None
        )
        return Response(entities.deploy_token(token, secret), status=201)


class DeployTokenView(_DeployTokenView):
    def get(self, request, owner_id: str, token_id: str):
        owner = self.managed_owner(owner_id)
        return Response(entities.deploy_token(selectors.find_deploy_token(owner, token_id)))

    def delete(self, request, owner_id: str, token_id: str):
        owner = self.managed_owner(owner_id)
        services.delete_deploy_token(token=selectors.find_deploy_token(owner, token_id))
        return Response(status=204)
