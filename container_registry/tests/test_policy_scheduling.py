"""The policy scheduler and one policy run per repository (claims, records, schedule).

Runs use ``FakeRegistryClient`` (see ``test_cleanup_service``) in place of the HTTP
registry; the scheduler itself never talks to the registry.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db.models import F
from django.utils import timezone

from container_registry.errors import TagsNotDeleted
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.scheduling import (
    advance_policy_schedule,
    claim_repository,
    mark_due_repositories,
    record_run,
    repositories_to_start,
    reset_stale_cleanups,
    run_policy_cleanup,
    schedule_cleanup_policies,
)
from container_registry.tests.test_cleanup_service import FakeRegistryClient
from gitlab_core.models import ApplicationSettings
from tests_support.factories import make_group, make_project

# The brake would hold most of these runs (see ``test_cleanup_brake``).
pytestmark = pytest.mark.usefixtures("cleanup_brake_off")

Status = ContainerRepository.CleanupStatus


def make_due(project, **changes) -> ContainerExpirationPolicy:
    policy = ContainerExpirationPolicy.objects.get(project=project)
    for key, value in {"enabled": True, "name_regex": ".*", "keep_n": None, "older_than": None, **changes}.items():
        setattr(policy, key, value)
    policy.save()
    # save() recomputes next_run_at; make it due an hour ago without saving again.
    ContainerExpirationPolicy.objects.filter(pk=policy.pk).update(next_run_at=timezone.now() - dt.timedelta(hours=1))
    policy.refresh_from_db()
    return policy


def statuses(*repos) -> list[str]:
    return [ContainerRepository.objects.get(pk=r.pk).expiration_policy_cleanup_status for r in repos]


@pytest.fixture
def due_project(world):
    project = world["project"]
    make_due(project)
    repos = [ContainerRepository.objects.create(project=project, name=n) for n in ("a", "b")]
    return project, repos


def test_scheduler_marks_repositories_of_due_enabled_policies_only(world, due_project):
    project, repos = due_project
    idle = make_project(world["platform"], "idle")  # enabled but not due
    ContainerExpirationPolicy.objects.filter(project=idle).update(enabled=True)
    disabled = make_project(world["platform"], "disabled")  # due but disabled
    ContainerExpirationPolicy.objects.filter(project=disabled).update(next_run_at=timezone.now())
    others = [ContainerRepository.objects.create(project=p, name="x") for p in (idle, disabled)]

    report = schedule_cleanup_policies()

    assert report.marked == 2
    assert statuses(*repos) == [Status.SCHEDULED, Status.SCHEDULED]
    assert statuses(*others) == [Status.UNSCHEDULED, Status.UNSCHEDULED]
    assert sorted(report.to_start) == sorted(r.pk for r in repos)


def test_scheduler_starts_no_more_runs_than_the_worker_capacity(due_project):
    settings = ApplicationSettings.current()
    settings.container_registry_expiration_policies_worker_capacity = 1
    settings.save()
    assert len(schedule_cleanup_policies().to_start) == 1


def test_capacity_zero_means_policies_never_run(due_project):
    _project, repos = due_project
    settings = ApplicationSettings.current()
    settings.container_registry_expiration_policies_worker_capacity = 0
    settings.save()
    assert schedule_cleanup_policies().to_start == []
    outcome = run_policy_cleanup(repository_id=repos[0].pk, client=FakeRegistryClient({"v1": None}))
    assert outcome.result == "skipped"


def test_scheduler_query_count_does_not_grow_with_projects_that_are_not_due(
    world, due_project, django_assert_max_num_queries
):
    for i in range(30):
        project = make_project(world["platform"], f"quiet{i}")
        ContainerExpirationPolicy.objects.filter(project=project).update(enabled=True)
        ContainerRepository.objects.create(project=project, name="img")
    with django_assert_max_num_queries(12):
        schedule_cleanup_policies()


def test_due_policy_lookup_uses_the_runnable_index(db):
    from django.db import connection

    from container_registry.scheduling import due_policies
    from projects.models import Project

    if connection.vendor == "postgresql":
        # The planner chooses by statistics: on a handful of rows a sequential scan is
        # rightly cheaper, and with sequential scans forbidden the primary key's index
        # sometimes won. With an instance's worth of policies, few of them enabled, and
        # fresh statistics it reads the policies through the index (an index or a
        # bitmap scan, depending on how many are due).
        group = make_group("fleet")
        projects = Project.objects.bulk_create(
            Project(namespace=group, name=f"p{i}", path=f"p{i}", full_path=f"fleet/p{i}", full_path_lower=f"fleet/p{i}")
            for i in range(3000)
        )
        later = timezone.now() + dt.timedelta(days=1)
        ContainerExpirationPolicy.objects.bulk_create(
            ContainerExpirationPolicy(project=p, enabled=i % 100 == 0, next_run_at=later)
            for i, p in enumerate(projects)
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE container_expiration_policies")
        plan = due_policies(now=timezone.now()).explain()
        assert "cep_runnable_idx" in plan and "Seq Scan on container_expiration_policies" not in plan
        return
    plan = due_policies(now=timezone.now()).explain()
    assert "USING INDEX cep_runnable_idx" in plan


def test_a_run_claims_deletes_and_records_the_outcome(due_project):
    _project, repos = due_project
    schedule_cleanup_policies()
    client = FakeRegistryClient({"latest": None, "v1": None, "v2": None})
    before = timezone.now()

    outcome = run_policy_cleanup(repository_id=repos[0].pk, client=client)

    assert outcome.result == "finished" and list(client.tags) == ["latest"]
    repo = ContainerRepository.objects.get(pk=repos[0].pk)
    assert repo.expiration_policy_cleanup_status == Status.UNSCHEDULED
    assert repo.expiration_policy_started_at >= before
    assert repo.expiration_policy_completed_at >= repo.expiration_policy_started_at
    assert (repo.last_cleanup_deleted_tags_count, repo.last_cleanup_stop_reason) == (2, "finished")


def test_a_second_task_for_the_same_repository_does_nothing(due_project):
    _project, repos = due_project
    schedule_cleanup_policies()
    client = FakeRegistryClient({"v1": None})
    assert run_policy_cleanup(repository_id=repos[0].pk, client=client).result == "finished"
    assert run_policy_cleanup(repository_id=repos[0].pk, client=client).result == "skipped"
    assert client.calls["list_tags"] == 1


def test_next_run_moves_by_the_cadence_once_every_repository_has_run(due_project):
    project, repos = due_project
    ContainerExpirationPolicy.objects.filter(project=project).update(cadence="7d")
    schedule_cleanup_policies()
    due_at = ContainerExpirationPolicy.objects.get(project=project).next_run_at
    run_policy_cleanup(repository_id=repos[0].pk, client=FakeRegistryClient({}))
    assert ContainerExpirationPolicy.objects.get(project=project).next_run_at == due_at
    run_policy_cleanup(repository_id=repos[1].pk, client=FakeRegistryClient({}))
    moved = ContainerExpirationPolicy.objects.get(project=project).next_run_at
    assert dt.timedelta(days=6, hours=23) < moved - timezone.now() <= dt.timedelta(days=7)
    # Nothing is due any more: the next scheduler pass marks nothing.
    assert schedule_cleanup_policies().marked == 0


def test_due_repositories_not_yet_cleaned_go_before_unfinished_ones(due_project):
    _project, (first, second) = due_project
    settings = ApplicationSettings.current()
    settings.container_registry_cleanup_tags_service_max_list_size = 1
    settings.container_registry_expiration_policies_worker_capacity = 1
    settings.save()
    schedule_cleanup_policies()
    client = FakeRegistryClient({"v1": None, "v2": None})
    outcome = run_policy_cleanup(repository_id=second.pk, client=client)
    assert (outcome.result, outcome.cleanup.stop_reason) == ("unfinished", "tags_limit")
    assert statuses(first, second) == [Status.SCHEDULED, Status.UNFINISHED]

    # One free worker: the repository that has not run in this cycle goes first.
    assert repositories_to_start(include_errored=False) == [first.pk]
    assert run_policy_cleanup(repository_id=first.pk, client=FakeRegistryClient({})).result == "finished"
    # Then the unfinished one resumes and ends the cleanup.
    assert repositories_to_start(include_errored=False) == [second.pk]
    assert run_policy_cleanup(repository_id=second.pk, client=client).result == "finished"
    assert list(client.tags) == []


def test_the_hourly_scheduler_also_starts_scheduled_repositories_before_unfinished_ones(world, due_project):
    _project, repos = due_project
    other = make_project(world["platform"], "other")
    make_due(other)
    unfinished = ContainerRepository.objects.create(
        project=other,
        name="u",
        expiration_policy_cleanup_status=Status.UNFINISHED,
        expiration_policy_started_at=timezone.now() - dt.timedelta(days=3),
        last_cleanup_stop_reason="tags_limit",
    )
    settings = ApplicationSettings.current()
    settings.container_registry_expiration_policies_worker_capacity = 2
    settings.save()

    report = schedule_cleanup_policies()

    assert sorted(report.to_start) == sorted(r.pk for r in repos)
    assert unfinished.pk not in report.to_start


def test_a_run_stopped_by_a_registry_error_waits_for_the_scheduler(due_project):
    _project, repos = due_project
    schedule_cleanup_policies()
    client = FakeRegistryClient({"v1": None})
    client.fail_on_delete_call = 1
    outcome = run_policy_cleanup(repository_id=repos[0].pk, client=client)
    assert outcome.result == "unfinished" and outcome.error is not None
    repo = ContainerRepository.objects.get(pk=repos[0].pk)
    assert repo.last_cleanup_stop_reason.startswith("registry_error: DELETE")
    assert repositories_to_start(include_errored=False) == [repos[1].pk]
    # The hourly scheduler resumes it, after the repository still waiting for its first run.
    assert repositories_to_start(include_errored=True) == [repos[1].pk, repos[0].pk]


def test_stale_ongoing_runs_are_put_back_as_unfinished(due_project):
    _project, repos = due_project
    long_ago = timezone.now() - dt.timedelta(hours=2)
    ContainerRepository.objects.filter(pk=repos[0].pk).update(
        expiration_policy_cleanup_status=Status.ONGOING, expiration_policy_started_at=long_ago
    )
    report = schedule_cleanup_policies()
    assert report.stale_reset == 1
    assert statuses(repos[0]) == [Status.UNFINISHED]
    assert repos[0].pk in report.to_start


def test_an_invalid_policy_is_disabled_and_deletes_nothing(due_project):
    project, repos = due_project
    schedule_cleanup_policies()
    ContainerExpirationPolicy.objects.filter(project=project).update(name_regex="[")
    client = FakeRegistryClient({"v1": None})
    assert run_policy_cleanup(repository_id=repos[0].pk, client=client).result == "invalid_policy"
    policy = ContainerExpirationPolicy.objects.get(project=project)
    assert not policy.enabled
    assert policy.disabled_reason.startswith("invalid_policy: name_regex is not valid RE2 syntax")
    assert list(client.tags) == ["v1"]


@pytest.mark.parametrize("name_regex", [None, "", "   "])
def test_an_enabled_policy_without_a_delete_regex_is_disabled_with_its_reason_instead_of_running(
    due_project, name_regex
):
    project, (first, second) = due_project
    schedule_cleanup_policies()
    ContainerExpirationPolicy.objects.filter(project=project).update(name_regex=name_regex)
    client = FakeRegistryClient({"v1": None})

    assert run_policy_cleanup(repository_id=first.pk, client=client).result == "invalid_policy"

    policy = ContainerExpirationPolicy.objects.get(project=project)
    assert (policy.enabled, policy.disabled_reason) == (False, "invalid_policy: name_regex is blank")
    assert client.calls["list_tags"] == 0 and list(client.tags) == ["v1"]
    repo = ContainerRepository.objects.get(pk=first.pk)
    assert (repo.expiration_policy_cleanup_status, repo.last_cleanup_stop_reason) == (
        Status.UNSCHEDULED,
        "invalid_policy",
    )
    # The project's other repository is released too when its turn comes.
    assert run_policy_cleanup(repository_id=second.pk, client=client).result == "policy_disabled"
    assert statuses(second) == [Status.UNSCHEDULED]
    # Enabling it again (with a regex) clears the reason.
    policy.name_regex, policy.enabled = ".*", True
    policy.save()
    assert ContainerExpirationPolicy.objects.get(project=project).disabled_reason is None


def test_the_hourly_scheduler_disables_enabled_policies_of_projects_without_repositories(world, due_project):
    project, _repos = due_project
    empty_due = make_project(world["platform"], "empty-due")
    make_due(empty_due)
    empty_later = make_project(world["platform"], "empty-later")
    ContainerExpirationPolicy.objects.filter(project=empty_later).update(enabled=True)
    empty_off = make_project(world["platform"], "empty-off")

    report = schedule_cleanup_policies()

    assert report.disabled == 2
    policies = {p.project_id: p for p in ContainerExpirationPolicy.objects.all()}
    for empty in (empty_due, empty_later):
        assert (policies[empty.pk].enabled, policies[empty.pk].disabled_reason) == (
            False,
            "no_container_repositories",
        )
    assert (policies[empty_off.pk].enabled, policies[empty_off.pk].disabled_reason) == (False, None)
    assert policies[project.pk].enabled and policies[project.pk].disabled_reason is None
    assert schedule_cleanup_policies().disabled == 0


def test_starting_a_run_clears_the_last_count_and_an_unfinished_run_records_no_completion(due_project):
    _project, (first, second) = due_project
    yesterday = timezone.now() - dt.timedelta(days=1)
    ContainerRepository.objects.filter(pk=first.pk).update(
        expiration_policy_completed_at=yesterday, last_cleanup_deleted_tags_count=7
    )
    settings = ApplicationSettings.current()
    settings.container_registry_cleanup_tags_service_max_list_size = 1
    settings.save()
    schedule_cleanup_policies()
    seen_during_run = []

    class WatchedRegistry(FakeRegistryClient):
        def list_tags(self, path: str, *, limit: int | None = None) -> list[str]:
            seen_during_run.append(
                ContainerRepository.objects.values_list(
                    "expiration_policy_cleanup_status", "last_cleanup_deleted_tags_count"
                ).get(pk=first.pk)
            )
            return super().list_tags(path, limit=limit)

    client = WatchedRegistry({"v1": None, "v2": None})
    assert run_policy_cleanup(repository_id=first.pk, client=client).result == "unfinished"

    assert seen_during_run == [(Status.ONGOING, None)]
    repo = ContainerRepository.objects.get(pk=first.pk)
    assert repo.expiration_policy_cleanup_status == Status.UNFINISHED
    assert repo.last_cleanup_deleted_tags_count is None
    assert repo.expiration_policy_completed_at == yesterday  # the last finished run's
    assert list(client.tags) == ["v2"]

    # A repository whose only run is unfinished has no completion time at all.
    assert run_policy_cleanup(repository_id=second.pk, client=FakeRegistryClient({"a": None, "b": None})).result == (
        "unfinished"
    )
    assert ContainerRepository.objects.get(pk=second.pk).expiration_policy_completed_at is None

    # The run that finishes records its completion and what it deleted.
    assert run_policy_cleanup(repository_id=first.pk, client=client).result == "finished"
    repo = ContainerRepository.objects.get(pk=first.pk)
    assert repo.expiration_policy_cleanup_status == Status.UNSCHEDULED
    assert repo.expiration_policy_completed_at >= repo.expiration_policy_started_at > yesterday
    assert repo.last_cleanup_deleted_tags_count == 1


def test_a_run_whose_every_tag_is_refused_ends_unfinished_with_the_error(due_project):
    _project, repos = due_project
    schedule_cleanup_policies()

    class RefusingRegistry(FakeRegistryClient):
        # The client skips a tag whose re-pointing PUT the registry refuses; here it
        # refuses every one (the real registry does so in read-only mode, test_cleanup_e2e).
        def delete_tags(self, path: str, tags: list[str]) -> list[str]:
            self.calls["delete_tags"] += 1
            return []

    client = RefusingRegistry({"latest": None, "v1": None, "v2": None})
    outcome = run_policy_cleanup(repository_id=repos[0].pk, client=client)

    assert outcome.result == "unfinished"
    assert isinstance(outcome.error, TagsNotDeleted)
    repo = ContainerRepository.objects.get(pk=repos[0].pk)
    assert repo.expiration_policy_cleanup_status == Status.UNFINISHED
    assert repo.last_cleanup_stop_reason == f"registry_error: could not delete tags of {repo.path}: v1, v2"
    assert repo.expiration_policy_completed_at is None and repo.last_cleanup_deleted_tags_count is None
    # Like any registry error it waits for the hourly scheduler rather than a chain of retries.
    assert repos[0].pk not in repositories_to_start(include_errored=False)


def test_a_run_that_deletes_some_of_its_tags_is_not_an_error(due_project):
    _project, repos = due_project
    schedule_cleanup_policies()

    class PartlyRefusingRegistry(FakeRegistryClient):
        def delete_tags(self, path: str, tags: list[str]) -> list[str]:
            return super().delete_tags(path, [t for t in tags if t != "v1"])

    outcome = run_policy_cleanup(repository_id=repos[0].pk, client=PartlyRefusingRegistry({"v1": None, "v2": None}))
    assert (outcome.result, outcome.error) == ("finished", None)
    assert ContainerRepository.objects.get(pk=repos[0].pk).last_cleanup_deleted_tags_count == 1


def test_an_unfinished_repository_whose_policy_runs_again_within_the_budget_waits_for_that_run(due_project):
    project, (first, _second) = due_project
    settings = ApplicationSettings.current()
    assert settings.container_registry_delete_tags_service_timeout == 250
    started = timezone.now() - dt.timedelta(days=1)
    ContainerRepository.objects.filter(pk=first.pk).update(
        expiration_policy_cleanup_status=Status.UNFINISHED,
        expiration_policy_started_at=started,
        last_cleanup_stop_reason="tags_limit",
    )
    # The next cycle starts in three minutes, within one run's 250 s deletion budget.
    ContainerExpirationPolicy.objects.filter(project=project).update(
        next_run_at=timezone.now() + dt.timedelta(minutes=3)
    )
    client = FakeRegistryClient({"v1": None})

    assert run_policy_cleanup(repository_id=first.pk, client=client).result == "next_run_soon"

    repo = ContainerRepository.objects.get(pk=first.pk)
    assert repo.expiration_policy_cleanup_status == Status.UNSCHEDULED
    assert list(client.tags) == ["v1"] and client.calls["list_tags"] == 0
    # Four minutes later (every stored time moved back instead of waiting) that run has
    # come: the repository is due like the others and is cleaned.
    four_minutes = dt.timedelta(minutes=4)
    ContainerExpirationPolicy.objects.filter(project=project).update(next_run_at=F("next_run_at") - four_minutes)
    ContainerRepository.objects.filter(pk=first.pk).update(
        expiration_policy_started_at=F("expiration_policy_started_at") - four_minutes
    )
    assert first.pk in schedule_cleanup_policies().to_start
    assert run_policy_cleanup(repository_id=first.pk, client=client).result == "finished"
    assert list(client.tags) == []


def test_an_unfinished_repository_whose_policy_runs_again_later_resumes_now(due_project):
    project, (first, _second) = due_project
    ContainerRepository.objects.filter(pk=first.pk).update(
        expiration_policy_cleanup_status=Status.UNFINISHED, last_cleanup_stop_reason="tags_limit"
    )
    ContainerExpirationPolicy.objects.filter(project=project).update(
        next_run_at=timezone.now() + dt.timedelta(minutes=10)
    )
    client = FakeRegistryClient({"v1": None})
    assert run_policy_cleanup(repository_id=first.pk, client=client).result == "finished"
    assert list(client.tags) == []


def test_a_policy_disabled_after_scheduling_releases_its_repositories(due_project):
    project, repos = due_project
    schedule_cleanup_policies()
    ContainerExpirationPolicy.objects.filter(project=project).update(enabled=False)
    client = FakeRegistryClient({"v1": None})
    assert run_policy_cleanup(repository_id=repos[0].pk, client=client).result == "policy_disabled"
    assert statuses(repos[0]) == [Status.UNSCHEDULED] and list(client.tags) == ["v1"]


def test_advancing_twice_moves_the_schedule_once(due_project):
    project, repos = due_project
    ContainerRepository.objects.filter(project=project).update(expiration_policy_started_at=timezone.now())
    now = timezone.now()
    assert advance_policy_schedule(project_id=project.pk, now=now) is True
    assert advance_policy_schedule(project_id=project.pk, now=now) is False


def test_repositories_of_other_groups_do_not_block_a_project(world):
    other = make_project(make_group("other"), "proj")
    make_due(other)
    repo = ContainerRepository.objects.create(project=other, name="")
    report = schedule_cleanup_policies()
    assert report.to_start == [repo.pk]


def test_a_stale_run_never_overwrites_the_claim_of_a_newer_run(due_project):
    _project, repos = due_project
    schedule_cleanup_policies()
    newer_claim = timezone.now() + dt.timedelta(hours=3)

    class SlowRegistry(FakeRegistryClient):
        def list_tags(self, path: str, *, limit: int | None = None) -> list[str]:
            # While this run is slow, the scheduler declares it stale and run B claims
            # the repository three hours later.
            assert reset_stale_cleanups(now=newer_claim) == 1
            assert claim_repository(repository_id=repos[0].pk, now=newer_claim)
            return super().list_tags(path, limit=limit)

    outcome = run_policy_cleanup(repository_id=repos[0].pk, client=SlowRegistry({"v1": None}))

    assert outcome.result == "finished"
    repo = ContainerRepository.objects.get(pk=repos[0].pk)
    # B still owns the repository: A's late record changed nothing.
    assert repo.expiration_policy_cleanup_status == Status.ONGOING
    assert repo.expiration_policy_started_at == newer_claim
    assert repo.expiration_policy_completed_at is None


def test_only_the_run_holding_the_current_claim_can_record(due_project):
    _project, repos = due_project
    schedule_cleanup_policies()
    old_claim = timezone.now() - dt.timedelta(hours=3)
    assert claim_repository(repository_id=repos[0].pk, now=old_claim)
    assert reset_stale_cleanups(now=timezone.now()) == 1
    newer_claim = timezone.now()
    assert claim_repository(repository_id=repos[0].pk, now=newer_claim)

    assert not record_run(
        repository_id=repos[0].pk, claimed_at=old_claim, result=None, stop_reason="x", now=newer_claim
    )

    repo = ContainerRepository.objects.get(pk=repos[0].pk)
    assert (repo.expiration_policy_cleanup_status, repo.expiration_policy_started_at) == (Status.ONGOING, newer_claim)
    assert record_run(repository_id=repos[0].pk, claimed_at=newer_claim, result=None, stop_reason="x", now=newer_claim)
    assert statuses(repos[0]) == [Status.UNFINISHED]


def test_marking_due_repositories_never_scans_the_repositories(world, due_project):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(20):
        quiet = make_project(world["platform"], f"quiet{i}")
        ContainerExpirationPolicy.objects.filter(project=quiet).update(enabled=True)
        ContainerRepository.objects.create(project=quiet, name="img")

    with CaptureQueriesContext(connection) as captured:
        assert mark_due_repositories(now=timezone.now()) == 2

    plans = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # On tables this small PostgreSQL rightly prefers a sequential scan; with it
            # forbidden, the plan shows which index the query can use.
            cursor.execute("SET LOCAL enable_seqscan = off")
            for query in captured.captured_queries:
                if query["sql"].lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
                    cursor.execute(f"EXPLAIN {query['sql']}")
                    plans += [row[0] for row in cursor.fetchall()]
            touching = [step for step in plans if "container_repositories" in step]
            assert touching, plans
            assert not [step for step in plans if "Seq Scan on container_repositories" in step], plans
            # (the column may appear in a Filter line; walking its index is what must not happen)
            assert not [step for step in plans if "Scan" in step and "cleanup_status" in step], plans
            return
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")
            plans += [row[-1] for row in cursor.fetchall()]
    touching = [step for step in plans if "container_repositories" in step or " U0 " in step]
    assert touching, plans
    # Repositories are reached by project id only: neither a full scan nor a walk of the
    # cleanup-status index, which holds every repository that is not due.
    assert not [step for step in plans if re.match(r"SCAN (TABLE )?container_repositories\b", step)], plans
    assert not [step for step in plans if "cleanup_status" in step], plans
