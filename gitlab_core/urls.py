from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("jwt/", include("jwt_auth.urls")),
    path("api/v4/", include("gitlab_core.api_urls")),
    path("-/", include("gitlab_core.health_urls")),
]

handler404 = "gitlab_core.api.errors.page_not_found"
# HTML for the admin, GitLab's JSON under /api/v4.
handler400 = "gitlab_core.api.errors.bad_request_page"
handler403 = "gitlab_core.api.errors.permission_denied_page"
handler500 = "gitlab_core.api.errors.server_error_page"
