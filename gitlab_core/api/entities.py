"""Response shapes of users, personal access tokens, application settings and audit
events, as GitLab's API renders them."""

from __future__ import annotations

from gitlab_core.api.format import base_url, iso, iso_date
from gitlab_core.models import ApplicationSettings, AuditEvent, PersonalAccessToken, User


def user_basic(user: User, request) -> dict:
    return {
        "id": user.pk,
        "username": user.username,
        "name": user.name,
        "state": user.state,
        "locked": False,
        "avatar_url": None,
        "web_url": f"{base_url(request)}/{user.username}",
    }


def user_full(user: User, request) -> dict:
    data = user_basic(user, request)
    data.update(
        {
            "created_at": iso(user.date_joined),
            "bio": "",
            "location": None,
            "public_email": None,
            "organization": "",
            "job_title": "",
            "email": user.email,
            "projects_limit": user.projects_limit,
            "can_create_group": user.can_create_group,
            "can_create_project": user.projects_limit > 0,
            "two_factor_enabled": user.two_factor_enabled,
            "external": user.external,
            "private_profile": False,
            "last_sign_in_at": iso(user.last_login),
            "confirmed_at": iso(user.date_joined),
            "current_sign_in_at": iso(user.last_login),
            "identities": [],
        }
    )
    return data


def user_admin(user: User, request) -> dict:
    data = user_full(user, request)
    namespace = getattr(user, "personal_namespace", None)
    data.update({"is_admin": user.is_admin, "note": user.note, "namespace_id": namespace.pk if namespace else None})
    return data


def user_for(viewer: User | None, user: User, request) -> dict:
    """The richest view of ``user`` that ``viewer`` may see."""
    if viewer is not None and viewer.is_admin:
        return user_admin(user, request)
    if viewer is not None and viewer.pk == user.pk:
        return user_full(user, request)
    return user_basic(user, request)


def personal_access_token(token: PersonalAccessToken, secret: str | None = None) -> dict:
    data = {
        "id": token.pk,
        "name": token.name,
        "description": token.description,
        "revoked": token.revoked,
        "active": token.active,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "scopes": list(token.scopes),
        "user_id": token.user_id,
        "expires_at": iso_date(token.expires_at),
    }
    if secret is not None:
        data["token"] = secret
    return data


# Rendered after ``container_expiration_policy_enabled_by_default``, the first of them.
DEFAULT_POLICY_SETTINGS = list(ApplicationSettings.DEFAULT_POLICY_FIELDS)[1:]


def application_settings(settings: ApplicationSettings) -> dict:
    return {
        "id": settings.pk,
        "created_at": iso(settings.created_at),
        "updated_at": iso(settings.updated_at),
        "container_registry_token_expire_delay": settings.container_registry_token_expire_delay,
        "container_registry_refresh_token_days": settings.container_registry_refresh_token_days,
        "container_expiration_policies_enable_historic_entries": (
            settings.container_expiration_policies_enable_historic_entries
        ),
        "container_registry_cleanup_tags_service_max_list_size": (
            settings.container_registry_cleanup_tags_service_max_list_size
        ),
        "container_registry_delete_tags_service_timeout": settings.container_registry_delete_tags_service_timeout,
        "container_registry_expiration_policies_caching": settings.container_registry_expiration_policies_caching,
        "container_registry_expiration_policies_worker_capacity": (
            settings.container_registry_expiration_policies_worker_capacity
        ),
        "container_expiration_policy_enabled_by_default": settings.container_expiration_policy_enabled_by_default,
        **{field: getattr(settings, field) for field in DEFAULT_POLICY_SETTINGS},
        "container_registry_cleanup_brake_enabled": settings.container_registry_cleanup_brake_enabled,
        "container_registry_cleanup_brake_tags": settings.container_registry_cleanup_brake_tags,
        "container_registry_cleanup_brake_percent": settings.container_registry_cleanup_brake_percent,
        "container_registry_vendor": settings.container_registry_vendor,
        "container_registry_version": settings.container_registry_version,
        "container_registry_features": list(settings.container_registry_features or []),
        "default_projects_limit": settings.default_projects_limit,
        "signup_enabled": settings.signup_enabled,
        "allow_local_requests_from_web_hooks_and_services": settings.allow_local_requests_from_web_hooks_and_services,
        "default_project_visibility": settings.default_project_visibility,
        "default_group_visibility": settings.default_group_visibility,
    }


def audit_event(event: AuditEvent) -> dict:
    return {
        "id": event.pk,
        "author_id": event.author_id,
        "entity_id": event.entity_id,
        "entity_type": event.entity_type,
        "event_name": event.event_name,
        "details": event.details,
        "created_at": iso(event.created_at),
    }
