"""Admin pages: users, personal access tokens and the application-settings singleton.

Only GitLab administrators (``is_superuser``, which implies ``is_staff``) can sign in.
Token digests never appear on a page; a token created here shows its secret once.
"""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import BaseUserCreationForm, UserChangeForm
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from gitlab_core import admin_bans, services
from gitlab_core.errors import ServiceError
from gitlab_core.models import PAT_SCOPES, ApplicationSettings, AuditEvent, PersonalAccessToken, User
from gitlab_core.signals import send_access_changed

admin.site.site_header = "GitLab container registry administration"
admin.site.site_title = "Registry admin"
admin.site.index_title = "Administration"
# Sign-in lockout per (client address, user); admin_bans also registers the "Login bans" page.
admin.site.login_form = admin_bans.LockoutAuthenticationForm


class ShowsNewSecretOnce:
    """Admin mixin: the page that answers the creation shows the new secret, once.

    ``save_model`` hands the secret to ``keep_new_secret``; ``response_add`` then answers
    with a page that shows it, instead of redirecting with a message: Django's messages
    travel in a signed, not encrypted, cookie (or the session), and the secret must not be
    stored anywhere readable. The page may not be cached (``no-store``).
    """

    secret_kind = "token"

    def keep_new_secret(self, request: HttpRequest, secret: str) -> None:
        request._new_secret = secret

    def response_add(self, request: HttpRequest, obj, post_url_continue=None):
        secret = getattr(request, "_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        opts = obj._meta
        context = {
            **self.admin_site.each_context(request),
            "title": f"New {self.secret_kind}",
            "opts": opts,
            "object": obj,
            "kind": self.secret_kind,
            "secret": secret,
            "change_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]),
            "list_url": reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"),
        }
        response = TemplateResponse(request, "admin/new_secret.html", context)
        add_never_cache_headers(response)  # includes no-store
        return response


# --- Users ---------------------------------------------------------------------------------


class UserCreateForm(BaseUserCreationForm):
    """The same rules as ``POST /api/v4/users``; the user is created by ``services.create_user``."""

    class Meta(BaseUserCreationForm.Meta):
        model = User
        fields = ("username", "email", "name")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["email"].required = True
        self.fields["name"].required = True

    def clean_username(self):
        username = self.cleaned_data["username"]
        if not services.valid_path(username):
            raise forms.ValidationError(services.USERNAME_PROBLEM)
        if services.username_taken(username):
            raise forms.ValidationError("has already been taken")
        return username

    def clean_email(self):
        email = self.cleaned_data["email"]
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("has already been taken")
        return email


class UserEditForm(UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    list_display = ("username", "name", "email", "state", "is_superuser", "two_factor_enabled", "last_login")
    list_filter = ("state", "is_superuser", "two_factor_enabled", "external")
    search_fields = ("username", "name", "email")
    ordering = ("id",)
    readonly_fields = ("last_login", "date_joined")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Profile", {"fields": ("name", "email", "note")}),
        (
            "Access",
            {
                "fields": ("state", "is_superuser", "two_factor_enabled", "external", "can_create_group"),
                "description": "Administrators (superusers) may sign in here and do everything. "
                "Blocked or deactivated users cannot sign in or use their tokens.",
            },
        ),
        ("Limits", {"fields": ("projects_limit",)}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("username", "name", "email", "password1", "password2")}),)
    filter_horizontal = ()

    def save_model(self, request, obj: User, form, change: bool) -> None:
        if change:
            # The admin saves the row itself (in its transaction); audit access changes.
            super().save_model(request, obj, form, change)
            services.record_user_access_changes(
                user=obj,
                state_before=form.initial.get("state", obj.state),
                admin_before=form.initial.get("is_superuser", obj.is_superuser),
            )
            return
        user = services.create_user(
            username=form.cleaned_data["username"],
            email=form.cleaned_data["email"],
            name=form.cleaned_data["name"],
            password=form.cleaned_data["password1"],
        )
        # The admin goes on with ``obj`` (log entry, redirect): make it the created row.
        obj.pk, obj._state.adding, obj._state.db = user.pk, False, user._state.db

    def has_delete_permission(self, request, obj=None) -> bool:
        # Users own namespaces and projects; GitLab admins block users instead of deleting them.
        return False


# --- Personal access tokens ---------------------------------------------------------------------


class PersonalAccessTokenCreateForm(forms.ModelForm):
    """The same rules as ``POST /api/v4/users/:id/personal_access_tokens``."""

    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in PAT_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="What the token may be used for: api for the REST API, read_registry/write_registry "
        "to pull and push images.",
    )

    class Meta:
        model = PersonalAccessToken
        fields = ("user", "name", "description", "scopes", "expires_at")
        help_texts = {
            "expires_at": f"Leave empty for a year from today; at most {services.PAT_MAX_LIFETIME_DAYS} days ahead."
        }

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is None:
            return None
        today = timezone.now().date()
        if expires_at <= today:
            raise forms.ValidationError("must be in the future")
        latest = today + dt.timedelta(days=services.PAT_MAX_LIFETIME_DAYS)
        if expires_at > latest:
            raise forms.ValidationError(f"must be before {latest.isoformat()}")
        return expires_at


@admin.action(description="Revoke selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    count = services.revoke_personal_access_tokens(tokens=queryset)
    modeladmin.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(ShowsNewSecretOnce, admin.ModelAdmin):
    secret_kind = "personal access token"
    list_display = ("name", "user", "scope_list", "expires_at", "revoked", "created_at", "last_used_at")
    list_filter = ("revoked",)
    search_fields = ("name", "user__username")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    actions = [revoke_tokens]
    # token_digest is deliberately absent from every list, form and read-only field.
    change_readonly = ("user", "name", "description", "scope_list", "expires_at", "created_at", "last_used_at")

    @admin.display(description="Scopes")
    def scope_list(self, obj: PersonalAccessToken) -> str:
        return ", ".join(obj.scopes or [])

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = PersonalAccessTokenCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "description", "scopes", "expires_at"]
        return [*self.change_readonly, "revoked"]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj is not None else ()

    def save_model(self, request, obj: PersonalAccessToken, form, change: bool) -> None:
        if change:
            # Only ``revoked`` is editable here; the admin saves the row in its transaction.
            super().save_model(request, obj, form, change)
            if "revoked" in form.changed_data:
                services.record_revoked_flag_change(token=obj)
                send_access_changed(PersonalAccessToken)
            return
        token, secret = services.create_personal_access_token(
            user=form.cleaned_data["user"],
            name=form.cleaned_data["name"],
            scopes=form.cleaned_data["scopes"],
            expires_at=form.cleaned_data["expires_at"],
            description=form.cleaned_data["description"] or None,
        )
        # The admin goes on with ``obj`` (log entry, redirect): make it the created row.
        obj.pk, obj._state.adding, obj._state.db = token.pk, False, token._state.db
        self.keep_new_secret(request, secret)

    def has_delete_permission(self, request, obj=None) -> bool:
        # Revocation keeps the audit trail (last use, rotation chain); deleting would lose it.
        return False


# --- Application settings (singleton) -------------------------------------------------------------


@admin.register(ApplicationSettings)
class ApplicationSettingsAdmin(admin.ModelAdmin):
    """One change page at a stable URL; no add, no delete, the list redirects to it."""

    fieldsets = (
        (
            "Container registry",
            {
                "fields": ("container_registry_token_expire_delay", "container_registry_refresh_token_days"),
                "description": "Settings of the token realm that the registry trusts.",
            },
        ),
        (
            "Cleanup policies",
            {
                "fields": (
                    "container_registry_expiration_policies_worker_capacity",
                    "container_registry_cleanup_tags_service_max_list_size",
                    "container_registry_delete_tags_service_timeout",
                    "container_registry_expiration_policies_caching",
                    "container_expiration_policies_enable_historic_entries",
                )
            },
        ),
        (
            "Default cleanup policy of new projects",
            {
                "fields": tuple(ApplicationSettings.DEFAULT_POLICY_FIELDS),
                "description": "A group's own default, when it has one, wins for the projects below it.",
            },
        ),
        (
            "Brake on mass deletion by cleanup policies",
            {
                "fields": (
                    "container_registry_cleanup_brake_enabled",
                    "container_registry_cleanup_brake_tags",
                    "container_registry_cleanup_brake_percent",
                )
            },
        ),
        (
            "Defaults for new users, groups and projects",
            {
                "fields": (
                    "default_projects_limit",
                    "default_project_visibility",
                    "default_group_visibility",
                    "signup_enabled",
                )
            },
        ),
        (
            "Outbound requests",
            {"fields": ("allow_local_requests_from_web_hooks_and_services",)},
        ),
        (
            "Registry (read only)",
            {"fields": ("container_registry_vendor", "container_registry_version", "container_registry_features")},
        ),
    )
    readonly_fields = ("container_registry_vendor", "container_registry_version", "container_registry_features")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        current = ApplicationSettings.current()
        return HttpResponseRedirect(reverse("admin:gitlab_core_applicationsettings_change", args=[current.pk]))

    def get_object(self, request, object_id, from_field=None):
        # The row may not exist yet on a fresh database; the stable URL must still work.
        if str(object_id) == "1":
            return ApplicationSettings.current()
        return super().get_object(request, object_id, from_field)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)

        class CheckedForm(form):
            def clean(self):
                cleaned = super().clean()
                changes = {name: cleaned.get(name) for name in self.changed_data if name in cleaned}
                try:
                    services.check_default_cleanup_policy(ApplicationSettings.current(), changes)
                except ServiceError as exc:
                    problem = exc.body.get("message", exc.body.get("error"))
                    if isinstance(problem, dict):
                        problem = "; ".join(f"{key}: {', '.join(texts)}" for key, texts in problem.items())
                    raise forms.ValidationError(str(problem)) from None
                return cleaned

        return CheckedForm

    def save_model(self, request, obj: ApplicationSettings, form, change: bool) -> None:
        # The same service as PUT /api/v4/application/settings (locking, validation).
        services.update_application_settings(changes={name: form.cleaned_data[name] for name in form.changed_data})

    def response_change(self, request, obj):
        # "Save" returns to this page, not to a list of one row.
        response = super().response_change(request, obj)
        if "_continue" not in request.POST and "_addanother" not in request.POST:
            return HttpResponseRedirect(request.path)
        return response


# --- Audit events (read only) ---------------------------------------------------------------------


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit log, as recorded: listed and searched, never added, changed or deleted."""

    list_display = ("created_at", "event_name", "author_name", "entity_type", "entity_path", "target", "ip_address")
    list_filter = ("entity_type", "event_name")
    search_fields = ("entity_path", "author_name", "target_details", "=ip_address")
    date_hierarchy = "created_at"
    # The count of every row would scan the whole table on each page.
    show_full_result_count = False
    fields = (
        "created_at",
        "event_name",
        "author_id",
        "author_name",
        "entity_type",
        "entity_id",
        "entity_path",
        "target_type",
        "target_id",
        "target_details",
        "ip_address",
        "details",
    )
    readonly_fields = fields

    @admin.display(description="target")
    def target(self, obj: AuditEvent) -> str:
        return f"{obj.target_type} {obj.target_details}".strip()

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
