"""``/api/v4`` routes of the token realm."""

from __future__ import annotations

from django.urls import path

from jwt_auth import api

urlpatterns = [
    path("user/registry_refresh_tokens", api.RefreshTokensView.as_view()),
    path("user/registry_refresh_tokens/<str:token_id>", api.RefreshTokenView.as_view()),
]
