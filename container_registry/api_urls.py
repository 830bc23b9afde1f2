"""``/api/v4`` routes of the container registry."""

from __future__ import annotations

from django.urls import path

from container_registry import api, receiver

_REPOSITORIES = "projects/<str:project_id>/registry/repositories"

urlpatterns = [
    path(_REPOSITORIES, api.ProjectRepositoriesView.as_view()),
    path(f"{_REPOSITORIES}/<str:repository_id>", api.ProjectRepositoryView.as_view()),
    path(f"{_REPOSITORIES}/<str:repository_id>/tags", api.RepositoryTagsView.as_view()),
    path(f"{_REPOSITORIES}/<str:repository_id>/tags/<str:tag_name>", api.RepositoryTagView.as_view()),
    path("groups/<str:group_id>/registry/repositories", api.GroupRepositoriesView.as_view()),
    path("registry/repositories/<str:repository_id>", api.RepositoryView.as_view()),
    path("container_registry_event/events", receiver.registry_events),
]
