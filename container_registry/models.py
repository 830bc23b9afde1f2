"""Container repositories, cleanup (expiration) policies, processed registry events and
per-project registry statistics.

Tags are not stored: they live in the registry and are read through its API, as GitLab
does with a third-party registry.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils import timezone

from projects.models import Namespace, Project

MAX_DELETION_FAILURES = 10


class ContainerRepository(models.Model):
    class Status(models.TextChoices):
        DELETE_SCHEDULED = "delete_scheduled"
        DELETE_FAILED = "delete_failed"
        DELETE_ONGOING = "delete_ongoing"

    class CleanupStatus(models.TextChoices):
        UNSCHEDULED = "cleanup_unscheduled"
        SCHEDULED = "cleanup_scheduled"
        UNFINISHED = "cleanup_unfinished"
        ONGOING = "cleanup_ongoing"
        # The brake stopped a mass deletion; released by a Maintainer or an administrator.
        HELD = "cleanup_held"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="container_repositories")
    # Image name below the project path; "" for the root image.
    name = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    status = models.CharField(max_length=20, choices=Status.choices, null=True, blank=True, db_index=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)
    delete_started_at = models.DateTimeField(null=True, blank=True)
    failed_deletion_count = models.PositiveSmallIntegerField(default=0)
    next_delete_attempt_at = models.DateTimeField(null=True, blank=True)
    last_deletion_error = models.TextField(null=True, blank=True)
    last_deletion_error_at = models.DateTimeField(null=True, blank=True)

    expiration_policy_cleanup_status = models.CharField(
        max_length=20, choices=CleanupStatus.choices, default=CleanupStatus.UNSCHEDULED, db_index=True
    )
    expiration_policy_started_at = models.DateTimeField(null=True, blank=True)
    expiration_policy_completed_at = models.DateTimeField(null=True, blank=True)
    last_cleanup_deleted_tags_count = models.IntegerField(null=True, blank=True)
    last_cleanup_stop_reason = models.CharField(max_length=255, null=True, blank=True)
    # The policy's ``rules_revision`` that this repository's runs were last allowed to
    # apply (a run that passed the brake, or a release); None before any.
    cleanup_policy_revision = models.PositiveIntegerField(null=True, blank=True)
    # When the brake held the repository, and the dry-run plan it held (bounded: counts
    # and the first tag names; ``container_registry.brake``).
    cleanup_held_at = models.DateTimeField(null=True, blank=True)
    cleanup_held_plan = models.JSONField(null=True, blank=True)

    push_count = models.PositiveBigIntegerField(default=0)
    pull_count = models.PositiveBigIntegerField(default=0)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    # Until when the tag cache may hold creation times of this repository's tags
    # (``tag_cache.remember`` moves it forward): a push forgets its tag's entry only
    # then, so pushes to other repositories cost no cache round trip.
    tag_dates_cached_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "container_repositories"
        ordering = ["id"]
        verbose_name_plural = "container repositories"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="container_repository_unique_name")]

    def __str__(self) -> str:
        return self.path

    @property
    def path(self) -> str:
        base = self.project.full_path
        return (f"{base}/{self.name}" if self.name else base).lower()

    @property
    def location(self) -> str:
        return f"{settings.REGISTRY_HOST_PORT}/{self.path}"

    @property
    def is_root(self) -> bool:
        return self.name == ""

    @staticmethod
    def backoff_delay(failed_count: int) -> dt.timedelta:
        """GitLab's wait after a failed deletion attempt: 2^count minutes."""
        return dt.timedelta(minutes=2**failed_count)


class Cadence(models.TextChoices):
    DAILY = "1d", "Every day"
    WEEKLY = "7d", "Every week"
    BIWEEKLY = "14d", "Every two weeks"
    MONTHLY = "1month", "Every month"
    QUARTERLY = "3month", "Every three months"


CADENCE_DURATIONS = {
    "1d": dt.timedelta(days=1),
    "7d": dt.timedelta(days=7),
    "14d": dt.timedelta(days=14),
    "1month": dt.timedelta(days=30),
    "3month": dt.timedelta(days=90),
}
KEEP_N_CHOICES = (1, 5, 10, 25, 50, 100)
OLDER_THAN_CHOICES = ("7d", "14d", "30d", "60d", "90d")


class ContainerExpirationPolicy(models.Model):
    """A project's cleanup policy. Validation lives in the cleanup-policy service."""

    project = models.OneToOneField(
        Project, primary_key=True, on_delete=models.CASCADE, related_name="container_expiration_policy"
    )
    enabled = models.BooleanField(default=False)
    cadence = models.CharField(max_length=12, choices=Cadence.choices, default=Cadence.DAILY)
    keep_n = models.IntegerField(
        null=True,
        blank=True,
        default=10,
        choices=[(n, f"{n} tag{'s' if n > 1 else ''} per image name") for n in KEEP_N_CHOICES],
    )
    older_than = models.CharField(
        max_length=12,
        null=True,
        blank=True,
        default="90d",
        choices=[(v, f"{v[:-1]} days") for v in OLDER_THAN_CHOICES],
    )
    name_regex = models.CharField(max_length=255, null=True, blank=True, default=".*")
    name_regex_keep = models.TextField(max_length=255, null=True, blank=True)
    next_run_at = models.DateTimeField(null=True, blank=True)
    # Moves on each save that changes what the policy deletes (``RULE_FIELDS``): the first
    # run of a repository under a new revision goes through the brake.
    rules_revision = models.PositiveIntegerField(default=1)
    # Why the scheduler turned the policy off (an invalid policy, a project without
    # repositories); cleared when the policy is saved enabled again.
    disabled_reason = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "container_expiration_policies"
        verbose_name_plural = "container expiration policies"
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="cep_runnable_idx")]

    RULE_FIELDS = ("enabled", "keep_n", "older_than", "name_regex", "name_regex_keep")

    def __str__(self) -> str:
        return f"cleanup policy of {self.project.full_path}"

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_rules = instance.rules_key()
        return instance

    def rules_key(self) -> tuple:
        return tuple(self.__dict__.get(name) for name in self.RULE_FIELDS)

    def save(self, *args, **kwargs):
        # GitLab recomputes the schedule on every save (documented behaviour).
        self.next_run_at = timezone.now() + CADENCE_DURATIONS[self.cadence]
        if self.enabled:
            self.disabled_reason = None
        rules_changed = not self._state.adding and getattr(self, "_loaded_rules", None) != self.rules_key()
        if rules_changed:
            self.rules_revision += 1
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "next_run_at", "disabled_reason", "rules_revision"}
        super().save(*args, **kwargs)
        self._loaded_rules = self.rules_key()
        if rules_changed:
            # A held repository waited for a release or a new policy: this is the new
            # policy, whose first run goes through the brake again. A repository still
            # waiting to run the old one waits for the new schedule (``next_run_at``).
            Status = ContainerRepository.CleanupStatus
            ContainerRepository.objects.filter(
                project_id=self.project_id, expiration_policy_cleanup_status__in=[Status.HELD, Status.SCHEDULED]
            ).update(
                expiration_policy_cleanup_status=ContainerRepository.CleanupStatus.UNSCHEDULED,
                cleanup_held_at=None,
                cleanup_held_plan=None,
            )


class RegistryEvent(models.Model):
    """Every registry notification event applied, by its id: the registry re-sends the
    same id after a timeout, and a second delivery must change nothing."""

    event_id = models.CharField(max_length=255, unique=True)
    action = models.CharField(max_length=16)
    repository = models.CharField(max_length=2048)
    tag = models.CharField(max_length=255, null=True, blank=True)
    digest = models.CharField(max_length=255, null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "container_registry_events"
        # For pruning. Migration 0002 makes it BRIN on PostgreSQL: rows arrive in time
        # order, and a B-tree cost every event one more index insertion.
        indexes = [models.Index(fields=["received_at"], name="cr_events_received_at")]

    def __str__(self) -> str:
        return f"{self.action} {self.repository} ({self.event_id})"


class ProjectRegistryStatistics(models.Model):
    project = models.OneToOneField(
        Project, primary_key=True, on_delete=models.CASCADE, related_name="registry_statistics"
    )
    container_registry_size = models.BigIntegerField(default=0)
    stale = models.BooleanField(default=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "project_registry_statistics"

    def __str__(self) -> str:
        return f"registry statistics of project {self.project_id}"


class GroupCleanupPolicyDefault(Namespace):
    """A group seen for its default cleanup policy (``Namespace.container_expiration_policy_default``),
    for the admin page of group defaults; no table of its own."""

    class Meta:
        proxy = True
        verbose_name = "group default cleanup policy"
        verbose_name_plural = "group default cleanup policies"
