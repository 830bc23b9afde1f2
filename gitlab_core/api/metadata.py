"""``GET /version`` and ``GET /metadata``: this service's version, in GitLab's shapes
(signed-in callers only, ``read_user`` tokens included, as in GitLab)."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core import version
from gitlab_core.api.views import ApiView


class VersionView(ApiView):
    allow_read_user = True

    def get(self, request):
        self.require_user()
        return Response({"version": version.version(), "revision": version.revision()})


class MetadataView(ApiView):
    allow_read_user = True

    def get(self, request):
        self.require_user()
        return Response(
            {
                "version": version.version(),
                "revision": version.revision(),
                # No Kubernetes agent server here.
                "kas": {"enabled": False, "externalUrl": None, "externalK8sProxyUrl": None, "version": None},
                "enterprise": False,
            }
        )
