"""Admin pages for cleanup policies: the list, the edit form (validated like the API),
"enable" and "run now" actions, and a dry-run page that shows every tag's decision."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from container_registry.cleanup import plan_cleanup
from container_registry.cleanup_rules import CleanupRules, InvalidCleanupRules
from container_registry.errors import RegistryError
from container_registry.maintenance import enable_cleanup_policies
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.policies import record_policy_changes
from container_registry.regex import validate_regex


class CleanupPolicyForm(forms.ModelForm):
    class Meta:
        model = ContainerExpirationPolicy
        fields = ["enabled", "cadence", "keep_n", "older_than", "name_regex", "name_regex_keep"]

    def clean(self):
        data = super().clean()
        for key in ("name_regex", "name_regex_keep"):
            value = data.get(key)
            if value and (detail := validate_regex(value)) is not None:
                self.add_error(key, f"not valid RE2 syntax: {detail}")
        if data.get("enabled") and not (data.get("name_regex") or "").strip():
            self.add_error("name_regex", "can't be blank when the policy is enabled")
        return data


@admin.register(ContainerExpirationPolicy)
class ContainerExpirationPolicyAdmin(admin.ModelAdmin):
    form = CleanupPolicyForm
    list_display = (
        "project_path",
        "enabled",
        "cadence",
        "keep_n",
        "older_than",
        "name_regex",
        "name_regex_keep",
        "next_run_at",
        "disabled_reason",
        "dry_run_link",
    )
    list_filter = ("enabled", "cadence")
    search_fields = ("project__full_path",)
    list_select_related = ("project",)
    readonly_fields = ("project", "next_run_at", "disabled_reason", "dry_run_link")
    actions = ("enable_policies",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # every project gets its policy when it is created

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ContainerExpirationPolicy, form, change: bool) -> None:
        # The admin saves the row itself, in its transaction: audit what changed.
        before = {name: form.initial.get(name) for name in form.base_fields}
        super().save_model(request, obj, form, change)
        record_policy_changes(obj, before, project=obj.project)

    @admin.display(description="project", ordering="project__full_path")
    def project_path(self, obj: ContainerExpirationPolicy) -> str:
        return obj.project.full_path

    @admin.display(description="dry run")
    def dry_run_link(self, obj: ContainerExpirationPolicy) -> str:
        url = reverse("admin:container_registry_cleanup_plan", args=[obj.pk])
        return format_html('<a href="{}">show what a run would delete</a>', url)

    @admin.action(description="Enable the selected cleanup policies")
    def enable_policies(self, request: HttpRequest, queryset: QuerySet) -> None:
        report = enable_cleanup_policies([policy.project for policy in queryset.select_related("project")])
        if report.enabled:
            self.message_user(request, f"Enabled {len(report.enabled)} cleanup policies.", messages.SUCCESS)
        for project_path, problem in report.skipped.items():
            self.message_user(request, f"{project_path}: not enabled, {problem}", messages.ERROR)

    def get_urls(self):
        view = self.admin_site.admin_view(self.cleanup_plan_view)
        return [path("<int:pk>/dry-run/", view, name="container_registry_cleanup_plan"), *super().get_urls()]

    def cleanup_plan_view(self, request: HttpRequest, pk: int):
        """The dry run of one policy: every tag of every repository of the project."""
        policy = self.get_object(request, str(pk))
        if policy is None or not self.has_view_permission(request, policy):
            return HttpResponseRedirect(reverse("admin:container_registry_containerexpirationpolicy_changelist"))
        rules = CleanupRules.from_policy(policy)
        plans = []
        for repository in ContainerRepository.objects.filter(project=policy.project).order_by("id"):
            repository.project = policy.project
            try:
                result = plan_cleanup(repository=repository, rules=rules)
                plans.append({"repository": repository, "result": result, "error": None})
            except InvalidCleanupRules as exc:
                self.message_user(request, f"The policy is not valid: {exc}", messages.ERROR)
                break
            except RegistryError as exc:
                plans.append({"repository": repository, "result": None, "error": str(exc)})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Cleanup dry run: {policy.project.full_path}",
            "opts": self.model._meta,
            "policy": policy,
            "plans": plans,
        }
        return TemplateResponse(request, "admin/container_registry/cleanup_plan.html", context)
