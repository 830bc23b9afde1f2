from __future__ import annotations

from django.urls import path

from jwt_auth import views

app_name = "jwt_auth"

urlpatterns = [
    path("auth", views.auth, name="auth"),
    path("jwks", views.jwks_view, name="jwks"),
]
