"""``/api/v4`` routes of users, personal access tokens, application settings, audit events,
version and metadata."""

from __future__ import annotations

from django.urls import path

from gitlab_core.api import application_settings, audit_events, metadata, tokens, users

urlpatterns = [
    path("user", users.CurrentUserView.as_view()),
    path("users", users.UsersView.as_view()),
    path("users/<str:user_id>", users.UserView.as_view()),
    path("users/<str:user_id>/personal_access_tokens", users.UserPersonalAccessTokensView.as_view()),
    path("personal_access_tokens", tokens.PersonalAccessTokensView.as_view()),
    path("personal_access_tokens/<str:token_id>", tokens.PersonalAccessTokenView.as_view()),
    path("personal_access_tokens/<str:token_id>/rotate", tokens.RotatePersonalAccessTokenView.as_view()),
    path("application/settings", application_settings.ApplicationSettingsView.as_view()),
    path("audit_events", audit_events.AuditEventsView.as_view()),
    path("audit_events/<str:event_id>", audit_events.AuditEventView.as_view()),
    path("version", metadata.VersionView.as_view()),
    path("metadata", metadata.MetadataView.as_view()),
]
