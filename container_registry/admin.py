"""Admin pages of the container registry app.

Container repositories are listed with their deletion state; the "Deletion" filter's
"failed" choice is the list of failed deletions, with the failure count and the last
error, and the "Retry deletion" action is the same way back as
``manage.py retry_failed_deletions``. Rows are not deleted here: deleting a row would
leave its images in the registry, so deletion goes through ``delete_scheduled``.
The "Cleanup policy" filter's "Held" choice lists the repositories the mass-deletion
brake held, with the plan of the held run; "Release held cleanup" releases them
(``container_registry.brake.release``, as the API does).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.text import Truncator

from container_registry import (
    admin_policies,  # noqa: F401  (registers the cleanup-policy admin)
    admin_policy_defaults,  # noqa: F401  (registers the group default cleanup policy admin)
    brake,
)
from container_registry.maintenance import retry_failed_deletions
from container_registry.models import MAX_DELETION_FAILURES, ContainerRepository
from gitlab_core.errors import ServiceError

Status = ContainerRepository.Status


class DeletionFilter(admin.SimpleListFilter):
    title = "deletion"
    parameter_name = "deletion"

    def lookups(self, request, model_admin):
        return (
            ("failed", "Failed deletions"),
            ("scheduled", "Scheduled"),
            ("ongoing", "In progress"),
            ("retrying", "Scheduled after a failure"),
            ("none", "Not being deleted"),
        )

    def queryset(self, request, queryset):
        value = self.value()
        if value == "failed":
            return queryset.filter(status=Status.DELETE_FAILED)
        if value == "scheduled":
            return queryset.filter(status=Status.DELETE_SCHEDULED)
        if value == "ongoing":
            return queryset.filter(status=Status.DELETE_ONGOING)
        if value == "retrying":
            return queryset.filter(status=Status.DELETE_SCHEDULED, failed_deletion_count__gt=0)
        if value == "none":
            return queryset.filter(Q(status__isnull=True) | Q(status=""))
        return queryset


@admin.register(ContainerRepository)
class ContainerRepositoryAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "repository_path",
        "deletion_status",
        "failed_deletion_count",
        "next_delete_attempt_at",
        "short_last_error",
        "last_deletion_error_at",
        "expiration_policy_cleanup_status",
    )
    list_display_links = ("id", "repository_path")
    list_filter = (DeletionFilter, "expiration_policy_cleanup_status")
    search_fields = ("name", "project__full_path")
    list_select_related = ("project",)
    ordering = ("id",)
    actions = ("retry_deletion", "release_held_cleanup")
    readonly_fields = [f.name for f in ContainerRepository._meta.fields] + [
        "repository_path",
        "location",
        "held_plan",
    ]
    fieldsets = (
        (None, {"fields": ("id", "project", "name", "repository_path", "location", "created_at", "updated_at")}),
        (
            "Deletion",
            {
                "fields": (
                    "status",
                    "status_updated_at",
                    "delete_started_at",
                    "failed_deletion_count",
                    "next_delete_attempt_at",
                    "last_deletion_error",
                    "last_deletion_error_at",
                )
            },
        ),
        (
            "Cleanup policy",
            {
                "fields": (
                    "expiration_policy_cleanup_status",
                    "expiration_policy_started_at",
                    "expiration_policy_completed_at",
                    "last_cleanup_deleted_tags_count",
                    "last_cleanup_stop_reason",
                    "cleanup_policy_revision",
                    "cleanup_held_at",
                    "held_plan",
                )
            },
        ),
        ("Usage", {"fields": ("push_count", "pull_count", "last_pushed_at", "last_pulled_at")}),
    )

    @admin.display(description="path", ordering="project__full_path")
    def repository_path(self, obj: ContainerRepository) -> str:
        return obj.path

    @admin.display(description="status", ordering="status")
    def deletion_status(self, obj: ContainerRepository) -> str:
        return obj.status or "active"

    @admin.display(description="last error")
    def short_last_error(self, obj: ContainerRepository) -> str:
        return Truncator(obj.last_deletion_error or "").chars(120)

    @admin.display(description="held run's plan")
    def held_plan(self, obj: ContainerRepository):
        plan = obj.cleanup_held_plan
        if not plan:
            return "-"
        names = ", ".join(tag["name"] for tag in plan["delete_tags"])
        more = " ..." if plan["delete_tags_truncated"] else ""
        return format_html(
            "Would delete {} of {} tags (limits: {} tags, {}%).<br>First to go: {}{}",
            plan["delete"],
            plan["tags"],
            plan["brake_tags"],
            plan["brake_percent"],
            names,
            more,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Rows appear when images are pushed.
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        # Removing a row would orphan its images in the registry.
        return False

    @admin.action(description="Retry deletion (ten more tries)", permissions=["change"])
    def retry_deletion(self, request: HttpRequest, queryset: QuerySet[ContainerRepository]) -> None:
        retried, skipped = [], []
        for repository in queryset.select_related("project"):
            result = retry_failed_deletions(repository_id=repository.pk)
            (retried if result.count else skipped).append(repository.path)
        if retried:
            self.message_user(
                request,
                f"Deletion scheduled again for {len(retried)} repositor{'y' if len(retried) == 1 else 'ies'} "
                f"({', '.join(retried)}); failure count reset, so {MAX_DELETION_FAILURES} more tries follow.",
                messages.SUCCESS,
            )
        if skipped:
            self.message_user(
                request,
                f"Left alone (not in delete_failed): {', '.join(skipped)}.",
                messages.WARNING,
            )

    @admin.action(description="Release held cleanup (next run deletes as planned)", permissions=["change"])
    def release_held_cleanup(self, request: HttpRequest, queryset: QuerySet[ContainerRepository]) -> None:
        released, skipped = [], []
        for repository in queryset.select_related("project"):
            try:
                brake.release(repository=repository)
            except ServiceError:
                skipped.append(repository.path)
            else:
                released.append(repository.path)
        if released:
            self.message_user(request, f"Released: {', '.join(released)}.", messages.SUCCESS)
        if skipped:
            self.message_user(request, f"Left alone (not held): {', '.join(skipped)}.", messages.WARNING)
