"""Admin pages: groups, projects, memberships, deploy tokens and CI jobs.

Paths are fixed once created (renaming would move images in the registry), and groups
and projects are not deleted here: deleting a project must go through
``DELETE /api/v4/projects/:id`` so that its container repositories are removed too.
Token digests never appear on a page; a token created here shows its secret once.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils import timezone

from gitlab_core.admin import ShowsNewSecretOnce
from gitlab_core.signals import send_access_changed
from projects.models import (
    DEPLOY_TOKEN_SCOPES,
    CiJob,
    DeployToken,
    Group,
    GroupMember,
    Namespace,
    Project,
    ProjectMember,
    Visibility,
)
from projects.paths import path_problems


def _visibility_label(value: int) -> str:
    return Visibility(value).label


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
class GroupAdmin(admin.ModelAdmin):
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
class ProjectAdmin(admin.ModelAdmin):
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

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# --- Memberships ------------------------------------------------------------------------------


@admin.register(GroupMember)
class GroupMemberAdmin(admin.ModelAdmin):
    list_display = ("group", "user", "access_level", "expires_at", "created_at")
    list_filter = ("access_level",)
    search_fields = ("group__full_path", "user__username")
    list_select_related = ("group", "user")
    raw_id_fields = ("group", "user", "created_by")


@admin.register(ProjectMember)
class ProjectMemberAdmin(admin.ModelAdmin):
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
    count = queryset.filter(revoked=False).update(revoked=True)
    send_access_changed(DeployToken)
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
            super().save_model(request, obj, form, change)
            return
        secret = obj.set_secret()
        super().save_model(request, obj, form, change)
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
