"""``/api/v4`` routes of the cleanup dry run and the brake's release (bulk deletion is
routed with the tags)."""

from __future__ import annotations

from django.urls import path

from container_registry import api_cleanup

urlpatterns = [
    path(
        "projects/<str:project_id>/registry/repositories/<str:repository_id>/cleanup_plan",
        api_cleanup.RepositoryCleanupPlanView.as_view(),
    ),
    path(
        "projects/<str:project_id>/registry/repositories/<str:repository_id>/cleanup/release",
        api_cleanup.RepositoryCleanupReleaseView.as_view(),
    ),
    path("projects/<str:project_id>/registry/cleanup_plan", api_cleanup.ProjectCleanupPlanView.as_view()),
]
