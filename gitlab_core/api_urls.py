"""``/api/v4`` routes: each app contributes its own module; unknown routes end in GitLab's 404."""

from __future__ import annotations

from django.urls import include, path, re_path

from gitlab_core.api.errors import api_not_found

urlpatterns = [
    path("", include("gitlab_core.api.urls")),
    path("", include("projects.api_urls")),
    path("", include("container_registry.api_urls")),
    path("", include("container_registry.api_cleanup_urls")),
    path("", include("jwt_auth.api_urls")),
    re_path(r"^.*$", api_not_found),
]
