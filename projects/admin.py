"""Admin pages: groups, projects, memberships, deploy tokens and CI jobs.

Paths are fixed once created (renaming would move images in the registry), and groups
and projects are not deleted here: deleting a project must go through
``DELETE /api/v4/projects/:id`` so that its container repositories are removed too.
Token digests never appear on a page; a token created here shows its secret once.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from gitlab_core.admin import ShowsNewSecretOnce
from gitlab_core.errors import ServiceError
from projects import protection, services, webhooks
from projects.models import (
    DEPLOY_TOKEN_SCOPES,
    CiJob,
    ContainerRepositoryProtectionRule,
    DeployToken,
    Group,
    GroupMember,
    Namespace,
    Project,
    ProjectMember,
    Visibility,
    WebHook,
    WebHookLog,
)
from projects.paths import path_problems


def _visibility_label(value: int) -> str:
    return Visibility(value).label


# --- Auditing what the admin saves directly ------------------------------------------------------
# The admin saves these rows itself, inside its own transaction; the hooks below record the
# same audit events as the services the API goes through.


def _stored_before(form, obj) -> dict:
    """The audited attributes this form may change, as they were before the save."""
    return {
        name: form.initial.get(name, getattr(obj, name))
        for name in services.AUDITED_ATTRIBUTES
        if name in form.base_fields
    }


class AuditsSavedNamespace:
    """Admin mixin for groups and projects: creation and attribute changes are audited."""

    def save_model(self, request, obj, form, change: bool) -> None:
        before = _stored_before(form, obj) if change else None
        super().save_model(request, obj, form, change)
        if before is None:
            self.record_created(obj)
        else:
            services.record_attribute_changes(obj, before)


def _member_source(member):
    return member.group if isinstance(member, GroupMember) else member.project


def _member_before(form) -> dict:
    return {"access_level": form.initial.get("access_level"), "expires_at": form.initial.get("expires_at")}


class AuditsMemberInlines:
    """Admin mixin: memberships added, changed or removed in an inline are audited."""

    def save_formset(self, request, form, formset, change: bool) -> None:
        if formset.model not in (GroupMember, ProjectMember):
            return super().save_formset(request, form, formset, change)
        before = {f.instance.pk: _member_before(f) for f in formset.initial_forms}
        formset.save()
        for member in formset.new_objects:
            services.record_member_created(_member_source(member), member)
        for member, _fields in formset.changed_objects:
            services.record_member_updated(_member_source(member), member, before[member.pk])
        for member in formset.deleted_objects:
            services.record_member_destroyed(_member_source(member), member)
        return None


class AuditsMembers:
    """Admin mixin for the membership pages: saves and deletions are audited."""

    def save_model(self, request, obj, form, change: bool) -> None:
        before = _member_before(form) if change else None
        super().save_model(request, obj, form, change)
        if before is None:
            services.record_member_created(_member_source(obj), obj)
        else:
            services.record_member_updated(_member_source(obj), obj, before)

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            services.record_member_destroyed(_member_source(obj), obj)

    def delete_queryset(self, request, queryset) -> None:
        with transaction.atomic():
            for member in queryset.select_related("user"):
                self.delete_model(request, member)


# --- Groups -------------------------------------------------------------------------------------


class GroupForm(forms.ModelForm):
    class Meta:
        model = Group
        fields = ("name", "path", "parent", "description", "visibility", "request_access_enabled")

    def clean(self):
        cleaned = super().clean()
        visibility, parent = cleaned.get("visibility"), cleaned.get("parent")
        if self.instance.pk is None and cleaned.get("path") is not None:
            # The API's rule (paths are fixed once created: only new groups are checked).
            for problem in path_problems(cleaned["path"], parent=parent):
                self.add_error("path", problem)
        if visibility is None:
            return cleaned
        if parent is not None and visibility > parent.visibility:
            self.add_error(
                "visibility", f"{_visibility_label(visibility)} is not allowed since the parent group is more private"
            )
        if self.instance.pk:
            children = Namespace.objects.filter(parent_id=self.instance.pk, visibility__gt=visibility).exists()
            projects = Project.objects.filter(namespace_id=self.instance.pk, visibility__gt=visibility).exists()
            if children or projects:
                self.add_error(
                    "visibility",
                    f"{_visibility_label(visibility)} is not allowed since this group contains "
                    "subgroups or projects with higher visibility",
                )
        return cleaned


class GroupMemberInline(admin.TabularInline):
    model = GroupMember
    fk_name = "group"
    fields = ("user", "access_level", "expires_at")
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Group)
class GroupAdmin(AuditsSavedNamespace, AuditsMemberInlines, admin.ModelAdmin):
    form = GroupForm
    list_display = ("full_path", "name", "visibility", "created_at")
    list_filter = ("visibility",)
    search_fields = ("full_path", "name")
    raw_id_fields = ("parent",)
    inlines = [GroupMemberInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("parent")

    def get_readonly_fields(self, request, obj=None):
        return ("path", "parent", "full_path") if obj is not None else ("full_path",)

    def record_created(self, obj: Group) -> None:
        services.record_group_created(obj)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "parent":
            kwargs["queryset"] = Group.objects.all()
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- Projects -----------------------------------------------------------------------------------


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ("namespace", "name", "path", "description", "visibility", "container_registry_access_level")

    def clean(self):
        cleaned = super().clean()
        namespace = cleaned.get("namespace") or getattr(self.instance, "namespace", None)
        visibility = cleaned.get("visibility")
        if self.instance.pk is None and namespace is not None and cleaned.get("path") is not None:
            for problem in path_problems(cleaned["path"], parent=namespace):
                self.add_error("path", problem)
        if namespace is not None and visibility is not None and namespace.is_group:
            if visibility > namespace.visibility:
                self.add_error(
                    "visibility", f"{_visibility_label(visibility)} is not allowed since the group is more private"
                )
        return cleaned


class ProjectMemberInline(admin.TabularInline):
    model = ProjectMember
    fk_name = "project"
    fields = ("user", "access_level", "expires_at")
    raw_id_fields = ("user",)
    extra = 0


@admin.register(Project)
class ProjectAdmin(AuditsSavedNamespace, AuditsMemberInlines, admin.ModelAdmin):
    form = ProjectForm
    list_display = ("full_path", "name", "visibility", "container_registry_access_level", "pending_delete")
    list_filter = ("visibility", "container_registry_access_level", "pending_delete")
    search_fields = ("full_path", "name")
    raw_id_fields = ("namespace", "creator")
    inlines = [ProjectMemberInline]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("namespace")

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            return ("namespace", "path", "full_path", "pending_delete", "created_at")
        return ("full_path",)

    def save_model(self, request, obj: Project, form, change: bool) -> None:
        if not change:
            obj.creator = request.user
        super().save_model(request, obj, form, change)

    def record_created(self, obj: Project) -> None:
        services.record_project_created(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- Memberships ------------------------------------------------------------------------------


@admin.register(GroupMember)
class GroupMemberAdmin(AuditsMembers, admin.ModelAdmin):
    list_display = ("group", "user", "access_level", "expires_at", "created_at")
    list_filter = ("access_level",)
    search_fields = ("group__full_path", "user__username")
    list_select_related = ("group", "user")
    raw_id_fields = ("group", "user", "created_by")


@admin.register(ProjectMember)
class ProjectMemberAdmin(AuditsMembers, admin.ModelAdmin):
    list_display = ("project", "user", "access_level", "expires_at", "created_at")
    list_filter = ("access_level",)
    search_fields = ("project__full_path", "user__username")
    list_select_related = ("project", "user")
    raw_id_fields = ("project", "user", "created_by")


# --- Deploy tokens -------------------------------------------------------------------------------


class DeployTokenCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(s, s) for s in DEPLOY_TOKEN_SCOPES],
        widget=forms.CheckboxSelectMultiple,
        help_text="read_registry pulls images, write_registry pushes them.",
    )

    class Meta:
        model = DeployToken
        fields = ("project", "group", "name", "username", "scopes", "expires_at")
        help_texts = {
            "project": "A project token reaches this project only.",
            "group": "Or: a group token reaches every project of the group and its subgroups.",
            "username": "Leave empty for gitlab+deploy-token-<id>.",
            "expires_at": "Leave empty for a token that does not expire.",
        }

    def clean(self):
        cleaned = super().clean()
        project, group = cleaned.get("project"), cleaned.get("group")
        if (project is None) == (group is None):
            raise forms.ValidationError("Choose a project or a group (one of them).")
        self.instance.deploy_token_type = DeployToken.Type.GROUP if group is not None else DeployToken.Type.PROJECT
        return cleaned

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("must be in the future")
        return expires_at


@admin.action(description="Revoke selected tokens")
def revoke_deploy_tokens(modeladmin, request, queryset):
    count = services.revoke_deploy_tokens(tokens=queryset)
    modeladmin.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(DeployToken)
class DeployTokenAdmin(ShowsNewSecretOnce, admin.ModelAdmin):
    secret_kind = "deploy token"
    list_display = (
        "name",
        "username",
        "deploy_token_type",
        "project",
        "group",
        "scope_list",
        "expires_at",
        "revoked",
        "created_at",
    )
    list_filter = ("deploy_token_type", "revoked")
    search_fields = ("name", "username", "project__full_path", "group__full_path")
    list_select_related = ("project", "group")
    raw_id_fields = ("project", "group")
    actions = [revoke_deploy_tokens]
    change_readonly = (
        "deploy_token_type",
        "project",
        "group",
        "name",
        "username",
        "scope_list",
        "expires_at",
        "created_at",
    )

    @admin.display(description="Scopes")
    def scope_list(self, obj: DeployToken) -> str:
        return ", ".join(obj.scopes or [])

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DeployTokenCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["project", "group", "name", "username", "scopes", "expires_at"]
        return [*self.change_readonly, "revoked"]

    def get_readonly_fields(self, request, obj=None):
        return self.change_readonly if obj is not None else ()

    def save_model(self, request, obj: DeployToken, form, change: bool) -> None:
        if change:
            # Only ``revoked`` is editable here; the admin saves the row in its transaction.
            super().save_model(request, obj, form, change)
            if "revoked" in form.changed_data:
                services.record_deploy_token_revoked_flag(obj)
            return
        secret = obj.set_secret()
        super().save_model(request, obj, form, change)
        services.record_deploy_token_created(obj)
        self.keep_new_secret(request, secret)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- CI jobs ----------------------------------------------------------------------------------------


@admin.register(CiJob)
class CiJobAdmin(admin.ModelAdmin):
    """Jobs come from the external CI; here they can be looked at and finished by hand."""

    list_display = ("id", "project", "user", "status", "created_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("project__full_path", "user__username")
    list_select_related = ("project", "user")
    fields = ("project", "user", "status", "created_at", "finished_at")
    readonly_fields = ("project", "user", "created_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- Container repository protection rules ------------------------------------------------------


class ProtectionRuleForm(forms.ModelForm):
    class Meta:
        model = ContainerRepositoryProtectionRule
        fields = [
            "project",
            "repository_path_pattern",
            "minimum_access_level_for_push",
            "minimum_access_level_for_delete",
        ]

    def clean(self):
        data = super().clean()
        project = data.get("project") or getattr(self.instance, "project", None)
        pattern = data.get("repository_path_pattern")
        if project is not None and pattern:
            for problem in protection.pattern_problems(pattern, project):
                self.add_error("repository_path_pattern", f"Repository path pattern {problem}")
        if project is not None and self.instance.pk is None:
            if (
                ContainerRepositoryProtectionRule.objects.filter(project=project).count()
                >= protection.MAX_RULES_PER_PROJECT
            ):
                raise forms.ValidationError(
                    f"A project has at most {protection.MAX_RULES_PER_PROJECT} protection rules."
                )
        if data.get("minimum_access_level_for_push") is None and data.get("minimum_access_level_for_delete") is None:
            raise forms.ValidationError("A rule must have at least a minimum access role for push or delete.")
        return data


@admin.register(ContainerRepositoryProtectionRule)
class ProtectionRuleAdmin(admin.ModelAdmin):
    """Protected container repositories (``projects.protection``): who may push to and
    delete from the repositories a pattern matches."""

    form = ProtectionRuleForm
    list_display = (
        "repository_path_pattern",
        "project",
        "minimum_access_level_for_push",
        "minimum_access_level_for_delete",
        "updated_at",
    )
    search_fields = ("repository_path_pattern", "project__full_path")
    list_select_related = ("project",)
    raw_id_fields = ("project",)

    def get_readonly_fields(self, request, obj=None):
        return ("project",) if obj is not None else ()

    def save_model(self, request, obj: ContainerRepositoryProtectionRule, form, change: bool) -> None:
        # The form checked what the API checks; the same functions save (and check again).
        fields = {name: form.cleaned_data.get(name) for name in ProtectionRuleForm.Meta.fields if name != "project"}
        if change:
            protection.update_rule(obj, **fields)
            return
        saved = protection.create_rule(project=form.cleaned_data["project"], **fields)
        obj.pk, obj._state.adding, obj._state.db = saved.pk, False, saved._state.db

    def delete_model(self, request, obj: ContainerRepositoryProtectionRule) -> None:
        protection.delete_rule(obj)

    def delete_queryset(self, request, queryset) -> None:
        for rule in queryset.select_related("project"):
            protection.delete_rule(rule)


# --- Webhooks ---------------------------------------------------------------------------------------


class WebHookForm(forms.ModelForm):
    token = forms.CharField(
        required=False,
        max_length=255,
        widget=forms.PasswordInput(render_value=False),
        help_text="Sent as X-Gitlab-Token. Leave empty to keep the current one.",
    )

    class Meta:
        model = WebHook
        fields = [
            "project",
            "group",
            "url",
            "name",
            "description",
            "token",
            "container_registry_events",
            "enable_ssl_verification",
        ]

    def clean_token(self):
        token = self.cleaned_data.get("token") or ""
        try:
            webhooks.check_token(token)
        except ServiceError:
            raise forms.ValidationError("The token must be printable ASCII characters.")
        return token or self.instance.token

    def clean(self):
        data = super().clean()
        if bool(data.get("project")) == bool(data.get("group")):
            raise forms.ValidationError("A hook belongs to exactly one project or one group.")
        url = data.get("url")
        if url and url != self.initial.get("url"):
            try:
                webhooks.check_url(url)
            except ServiceError as exc:
                self.add_error("url", "; ".join(exc.body["message"]["url"]))
        return data


class WebHookLogInline(admin.TabularInline):
    """The hook's most recent deliveries (at most ``projects.webhooks.MAX_LOGS_PER_HOOK``
    are kept)."""

    model = WebHookLog
    extra = 0
    max_num = 0
    can_delete = False
    fields = readonly_fields = (
        "created_at",
        "trigger",
        "attempt",
        "response_status",
        "execution_duration",
        "idempotency_key",
    )
    ordering = ("-id",)


@admin.register(WebHook)
class WebHookAdmin(admin.ModelAdmin):
    form = WebHookForm
    inlines = [WebHookLogInline]
    list_display = ("url", "project", "group", "container_registry_events", "status", "recent_failures", "created_at")
    search_fields = ("url", "project__full_path", "group__full_path")
    list_select_related = ("project", "group")
    raw_id_fields = ("project", "group")

    @admin.display(description="Status")
    def status(self, obj: WebHook) -> str:
        return webhooks.alert_status(obj)

    def save_model(self, request, obj: WebHook, form, change: bool) -> None:
        # Saving a hook clears its disabling state, as in GitLab; the URL was checked by the form.
        webhooks.save_hook(obj, url_changed=False)


@admin.register(WebHookLog)
class WebHookLogAdmin(admin.ModelAdmin):
    """Recent deliveries of every hook: status, duration and response code."""

    list_display = ("created_at", "hook", "trigger", "attempt", "response_status", "execution_duration")
    list_filter = ("response_status",)
    list_select_related = ("hook",)
    readonly_fields = (
        "hook",
        "trigger",
        "idempotency_key",
        "attempt",
        "response_status",
        "response_body",
        "execution_duration",
        "created_at",
    )

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
