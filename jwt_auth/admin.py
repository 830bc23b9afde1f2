"""Admin page of the realm's refresh tokens: list, inspect, revoke (delete).

They are issued only by ``/jwt/auth``; nothing here creates or edits one, and the digest
never appears on a page.
"""

from __future__ import annotations

from django.contrib import admin

from jwt_auth.models import RefreshToken


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "credential_type", "client_id", "created_at", "expires_at", "last_used_at")
    list_filter = ("credential_type",)
    search_fields = ("user__username", "deploy_token__username", "client_id")
    list_select_related = ("user", "deploy_token")
    fields = (
        "user",
        "credential_type",
        "personal_access_token",
        "deploy_token",
        "client_id",
        "created_at",
        "expires_at",
        "last_used_at",
    )
    readonly_fields = fields

    @admin.display(description="Owner")
    def owner(self, obj: RefreshToken) -> str:
        if obj.user is not None:
            return obj.user.username
        return f"deploy token {obj.deploy_token.username}" if obj.deploy_token is not None else "-"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
