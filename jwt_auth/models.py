"""Refresh tokens of the realm (distribution's OAuth2 token flow, ``offline_token``).

A refresh token stands for the credential it was issued for: a personal access token,
a deploy token or a password. It is stored as a digest, expires after
``container_registry_refresh_token_days`` (an application setting), and stops working
as soon as that credential would: the user blocked or deleted, the token revoked or
expired, the password changed. ``jwt_auth.refresh_tokens`` issues and resolves them.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from gitlab_core.models import PersonalAccessToken, User
from projects.models import DeployToken


class RefreshTokenQuerySet(models.QuerySet):
    def unexpired(self) -> RefreshTokenQuerySet:
        return self.filter(expires_at__gt=timezone.now())


class RefreshToken(models.Model):
    class Credential(models.TextChoices):
        PERSONAL_ACCESS_TOKEN = "personal_access_token"
        DEPLOY_TOKEN = "deploy_token"
        PASSWORD = "gitlab_or_ldap", "password"

    credential_type = models.CharField(max_length=32, choices=Credential.choices)
    # Exactly one of user (personal access token, password) and deploy_token is set.
    user = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="registry_refresh_tokens"
    )
    personal_access_token = models.ForeignKey(
        PersonalAccessToken, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    deploy_token = models.ForeignKey(DeployToken, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # For a password: a digest of the user's password hash when the token was issued;
    # a new password retires the token.
    password_fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    client_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = RefreshTokenQuerySet.as_manager()

    class Meta:
        db_table = "registry_refresh_tokens"
        indexes = [models.Index(fields=["user", "-id"], name="refresh_tokens_by_user")]

    def __str__(self) -> str:
        return f"registry refresh token {self.pk}"

    @property
    def expired(self) -> bool:
        return self.expires_at <= timezone.now()
