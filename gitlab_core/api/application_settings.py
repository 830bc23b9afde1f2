"""``/application/settings`` (admins only): the registry settings and a few others."""

from __future__ import annotations

from rest_framework.response import Response

from gitlab_core import services
from gitlab_core.api import entities
from gitlab_core.api.views import ApiView
from gitlab_core.errors import forbidden, invalid_params
from gitlab_core.models import ApplicationSettings

# Writable fields by type. Vendor, version and features come from the registry itself
# and, like id and timestamps, are read-only here.
INTEGER_FIELDS = (
    "container_registry_token_expire_delay",
    "container_registry_refresh_token_days",
    "container_registry_cleanup_tags_service_max_list_size",
    "container_registry_delete_tags_service_timeout",
    "container_registry_expiration_policies_worker_capacity",
    "container_registry_cleanup_brake_tags",
    "container_registry_cleanup_brake_percent",
    "default_projects_limit",
)
BOOLEAN_FIELDS = (
    "container_expiration_policies_enable_historic_entries",
    "container_registry_expiration_policies_caching",
    "container_expiration_policy_enabled_by_default",
    "container_registry_cleanup_brake_enabled",
    "signup_enabled",
    "allow_local_requests_from_web_hooks_and_services",
)
VISIBILITY_FIELDS = ("default_project_visibility", "default_group_visibility")
# The instance's default cleanup policy of new projects (empty or null: none), checked
# by the rules of a project's policy.
POLICY_DEFAULT_FIELDS = (
    "container_expiration_policy_default_cadence",
    "container_expiration_policy_default_keep_n",
    "container_expiration_policy_default_older_than",
    "container_expiration_policy_default_name_regex",
    "container_expiration_policy_default_name_regex_keep",
)
WRITABLE_FIELDS = INTEGER_FIELDS + BOOLEAN_FIELDS + VISIBILITY_FIELDS + POLICY_DEFAULT_FIELDS
MAX_SETTING_STRING = 255
# The columns are 32-bit integers on PostgreSQL.
MAX_SETTING_INT = 2**31 - 1


class ApplicationSettingsView(ApiView):
    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not self.require_user().is_admin:
            raise forbidden()

    def get(self, request):
        return Response(entities.application_settings(ApplicationSettings.current()))

    def put(self, request):
        params = self.params()
        changes = {}
        for field in INTEGER_FIELDS:
            if params.has(field):
                changes[field] = params.int(field, maximum=MAX_SETTING_INT)
        for field in BOOLEAN_FIELDS:
            if params.has(field):
                changes[field] = params.bool(field)
        for field in VISIBILITY_FIELDS:
            if params.has(field):
                changes[field] = params.choice(field, ("private", "internal", "public"))
        for field in POLICY_DEFAULT_FIELDS:
            if not params.has(field):
                continue
            if field.endswith("_keep_n"):
                changes[field] = params.int(field, nullable=True) if params.raw(field) != "" else None
            else:
                value = params.str(field, nullable=True, max_length=MAX_SETTING_STRING)
                changes[field] = value if value != "" or field.endswith("_cadence") else None
        params.check()
        if not changes:
            raise invalid_params(f"{', '.join(WRITABLE_FIELDS)} are missing, at least one parameter must be provided")
        settings = services.update_application_settings(changes=changes)
        return Response(entities.application_settings(settings))
