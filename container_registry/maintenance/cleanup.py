"""Maintenance functions for cleanup policies (for ``manage.py shell`` and the commands
``run_cleanup_policy`` and ``cleanup_policy_report``)::

    from container_registry import maintenance
    maintenance.run_cleanup_policy("acme/platform/svc", dry_run=True)
    maintenance.projects_with_disabled_cleanup_policy()
    maintenance.enable_cleanup_policies(maintenance.projects_with_disabled_cleanup_policy())
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, QuerySet
from django.utils import timezone

from container_registry.cleanup import (
    LIMIT_REASONS,
    STOP_REGISTRY_ERROR,
    CleanupResult,
    CleanupRules,
    TagDecision,
    cleanup_tags,
    plan_cleanup,
)
from container_registry.errors import RegistryError
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.policies import audited_values, policy_problem, record_policy_changes
from container_registry.scheduling import claim_repository, record_run
from projects.models import Project

__all__ = [
    "EnableReport",
    "RepositoryRun",
    "enable_cleanup_policies",
    "find_project",
    "projects_with_disabled_cleanup_policy",
    "run_cleanup_policy",
]

CleanupStatus = ContainerRepository.CleanupStatus
# A manual run repeats the cleanup while the limits cut it short and it still deletes.
MAX_ROUNDS = 10_000

Progress = Callable[[str, int, int], None]


@dataclass
class RepositoryRun:
    """One repository of ``run_cleanup_policy``: ``status`` is ``finished``,
    ``unfinished``, ``busy`` (a scheduled run holds it) or ``planned`` (dry run)."""

    path: str
    status: str
    stop_reason: str = ""
    deleted: list[str] = field(default_factory=list)
    plan: list[TagDecision] = field(default_factory=list)
    error: str | None = None


@dataclass
class EnableReport:
    enabled: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def find_project(id_or_path: Project | int | str) -> Project:
    """A project by id or full path (case-insensitive). Raises ``Project.DoesNotExist``."""
    if isinstance(id_or_path, Project):
        return id_or_path
    text = str(id_or_path).strip()
    lookup = {"pk": int(text)} if text.isdigit() else {"full_path_lower": text.strip("/").lower()}
    return Project.objects.get(pending_delete=False, **lookup)


def _policy_rules(project: Project) -> CleanupRules:
    policy, _ = ContainerExpirationPolicy.objects.get_or_create(project=project)
    return CleanupRules.from_policy(policy)


def _run_repository(repository: ContainerRepository, rules: CleanupRules, progress: Progress | None) -> RepositoryRun:
    statuses = [CleanupStatus.UNSCHEDULED, CleanupStatus.SCHEDULED, CleanupStatus.UNFINISHED]
    claimed_at = timezone.now()
    if not claim_repository(repository_id=repository.pk, now=claimed_at, statuses=statuses):
        return RepositoryRun(repository.path, "busy", error="a cleanup run of this repository is ongoing")
    run = RepositoryRun(repository.path, "unfinished")
    report = None
    if progress is not None:
        # Each round counts from zero against its own list: add the earlier rounds'
        # deletions to both sides so the line reads against the whole run's total.
        def report(done: int, total: int) -> None:
            progress(repository.path, len(run.deleted) + done, len(run.deleted) + total)

    result: CleanupResult | None = None
    try:
        for _ in range(MAX_ROUNDS):
            result = cleanup_tags(repository=repository, rules=rules, policy_run=True, progress=report)
            run.deleted += result.deleted
            if result.finished or result.stop_reason not in LIMIT_REASONS or not result.deleted:
                break
    finally:
        stop_reason = result.stop_reason if result else "error"
        if result is not None:
            result.deleted = run.deleted
        record_run(
            repository_id=repository.pk,
            claimed_at=claimed_at,
            result=result,
            stop_reason=stop_reason,
            now=timezone.now(),
        )
    run.status, run.stop_reason = result.status, result.stop_reason
    if result.error is not None:
        run.error = f"{STOP_REGISTRY_ERROR}: {result.error}"
    return run


def run_cleanup_policy(
    project: Project | int | str, *, dry_run: bool = False, progress: Progress | None = None
) -> list[RepositoryRun]:
    """Run ``project``'s cleanup policy now over all its repositories, enabled or not
    (GitLab's console recipe), repeating while the per-run limits cut it short.

    With ``dry_run`` nothing is deleted and each result carries the plan. Records each
    run on its repository; does not move the policy's schedule. Raises
    ``Project.DoesNotExist`` and ``InvalidCleanupRules``; registry faults are reported
    per repository (``error``).
    """
    project = find_project(project)
    rules = _policy_rules(project)
    rules.compile()
    runs = []
    for repository in ContainerRepository.objects.filter(project=project, status__isnull=True).order_by("id"):
        repository.project = project
        if dry_run:
            try:
                plan = plan_cleanup(repository=repository, rules=rules)
            except RegistryError as exc:
                runs.append(RepositoryRun(repository.path, "planned", error=f"{STOP_REGISTRY_ERROR}: {exc}"))
                continue
            runs.append(RepositoryRun(repository.path, "planned", plan=plan.decisions))
        else:
            runs.append(_run_repository(repository, rules, progress))
    return runs


def projects_with_disabled_cleanup_policy() -> QuerySet[Project]:
    """Live projects that have container repositories but no enabled cleanup policy
    (GitLab's admin SQL recipe), with ``repository_count``, by path."""
    enabled = ContainerExpirationPolicy.objects.filter(project_id=OuterRef("pk"), enabled=True)
    return (
        Project.objects.filter(pending_delete=False, container_repositories__isnull=False)
        .filter(~Exists(enabled))
        .annotate(repository_count=Count("container_repositories", distinct=True))
        .order_by("full_path_lower")
    )


def enable_cleanup_policies(projects: Iterable[Project] | None = None) -> EnableReport:
    """Enable the cleanup policy of ``projects`` (default: every project listed by
    ``projects_with_disabled_cleanup_policy``). Saving recomputes ``next_run_at``. A policy
    whose delete regex is blank or invalid is skipped (enabling it would be refused)."""
    report = EnableReport()
    for project in projects if projects is not None else projects_with_disabled_cleanup_policy():
        policy, _ = ContainerExpirationPolicy.objects.get_or_create(project=project)
        problem = policy_problem(policy)
        if problem:
            report.skipped[project.full_path] = problem
            continue
        before = audited_values(policy)
        policy.enabled = True
        with transaction.atomic():
            policy.save()
            record_policy_changes(policy, before, project=project)
        report.enabled.append(project.full_path)
    return report
