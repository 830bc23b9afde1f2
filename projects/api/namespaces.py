"""``/namespaces``: the personal namespace and groups of the caller (administrators: all),
and one namespace by id or full path."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core.api.views import ApiView
from projects import entities, selectors

MAX_LENGTH = 255


class NamespacesView(ApiView):
    def get(self, request):
        user = self.require_user()
        params = self.params()
        search = params.str("search", max_length=MAX_LENGTH)
        owned_only = params.bool("owned_only", default=False)
        top_level_only = params.bool("top_level_only", default=False)
        params.check()
        namespaces = selectors.list_namespaces(
            viewer=user, search=search, owned_only=owned_only, top_level_only=top_level_only
        )
        return self.paginated(namespaces, lambda ns: entities.namespace(ns, request))


class NamespaceView(ApiView):
    def get(self, request, namespace_id: str):
        user = self.require_user()
        return Response(entities.namespace(selectors.find_namespace(user, self.decode_id(namespace_id)), request))
