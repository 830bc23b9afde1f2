"""``/projects/:id/deploy_tokens``: list, get, create, delete (Maintainer+)."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core.api.views import ApiView
from gitlab_core.errors import forbidden, invalid_params
from projects import entities, permissions, selectors, services
from projects.models import DEPLOY_TOKEN_SCOPES, Project


class _DeployTokenView(ApiView):
    def managed_project(self, raw_id: str) -> Project:
        user = self.require_user()
        project = selectors.find_project(user, self.decode_id(raw_id))
        if not permissions.can(user, permissions.ADMIN_DEPLOY_TOKENS, project):
            raise forbidden()
        return project


class DeployTokensView(_DeployTokenView):
    def get(self, request, project_id: str):
        project = self.managed_project(project_id)
        params = self.params()
        active = params.bool("active")
        params.check()
        return self.paginated(selectors.list_deploy_tokens(project, active=active), entities.deploy_token)

    def post(self, request, project_id: str):
        project = self.managed_project(project_id)
        params = self.params()
        name = params.str("name", required=True, max_length=255, allow_blank=False)
        scopes = params.array("scopes", required=True)
        expires_at = params.datetime("expires_at")
        username = params.str("username", max_length=255, nullable=True)
        params.check()
        if any(scope not in DEPLOY_TOKEN_SCOPES for scope in scopes):
            raise invalid_params("scopes does not have a valid value")
        token, secret = services.create_deploy_token(
            project=project, name=name, scopes=scopes, expires_at=expires_at, username=username or None
        )
        return Response(entities.deploy_token(token, secret), status=201)


class DeployTokenView(_DeployTokenView):
    def get(self, request, project_id: str, token_id: str):
        project = self.managed_project(project_id)
        return Response(entities.deploy_token(selectors.find_deploy_token(project, token_id)))

    def delete(self, request, project_id: str, token_id: str):
        project = self.managed_project(project_id)
        services.delete_deploy_token(token=selectors.find_deploy_token(project, token_id))
        return Response(status=204)
