"""Repository deletion: claim, backoff, stale reset, project deletion.

Time is moved by passing ``now=``, never waited. Failures come from a real refused
connection (the registry URL points at a port nothing listens on); the successful path
against the real registry is in ``test_deletion_e2e.py``.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from container_registry import deletion
from container_registry.models import ContainerRepository
from projects.models import Project
from projects.signals import project_deletion_requested
from tests_support import db_faults
from tests_support.factories import make_group, make_project
from tests_support.registry import free_port

Status = ContainerRepository.Status
T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def dead_registry(settings, registry_keys):
    """Settings pointing at a registry that refuses connections (a real fault)."""
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"
    return settings.REGISTRY_API_URL


@pytest.fixture
def project(db):
    return make_project(make_group("acme"), "svc")


def scheduled(project, name="app", **fields) -> ContainerRepository:
    return ContainerRepository.objects.create(
        project=project, name=name, status=Status.DELETE_SCHEDULED, status_updated_at=T0, **fields
    )


class FakeClient:
    """Stands in for the registry only where the fault cannot be produced with the real
    one: a registry that still lists tags after deleting them, or a bug in our code."""

    def __init__(self, *, tags=(), remaining=(), crash: Exception | None = None):
        self.tags, self.remaining, self.crash = list(tags), list(remaining), crash
        self.calls = 0

    def list_tags(self, path):
        self.calls += 1
        if self.crash:
            raise self.crash
        return self.tags if self.calls == 1 else self.remaining

    def delete_tags(self, path, tags):
        return list(tags)


def test_claim_moves_a_due_repository_to_delete_ongoing_once(project):
    repo = scheduled(project)
    claimed = deletion.claim_repository_for_deletion(repository_id=repo.pk, now=T0)
    assert claimed is not None
    assert claimed.status == Status.DELETE_ONGOING
    assert claimed.delete_started_at == T0
    assert deletion.claim_repository_for_deletion(repository_id=repo.pk, now=T0) is None


def test_claim_ignores_repositories_that_are_not_due_or_not_scheduled(project):
    waiting = scheduled(project, "waiting", next_delete_attempt_at=T0 + MINUTE)
    failed = ContainerRepository.objects.create(project=project, name="failed", status=Status.DELETE_FAILED)
    active = ContainerRepository.objects.create(project=project, name="active")
    for repo in (waiting, failed, active):
        assert deletion.claim_repository_for_deletion(repository_id=repo.pk, now=T0) is None
    assert deletion.claim_repository_for_deletion(repository_id=waiting.pk, now=T0 + MINUTE) is not None


def test_second_run_of_the_same_deletion_is_a_no_op(project, dead_registry):
    repo = scheduled(project)
    first = deletion.delete_repository(repository_id=repo.pk, now=T0)
    second = deletion.delete_repository(repository_id=repo.pk, now=T0)
    assert first.result == "rescheduled"
    assert second.result == "skipped"
    repo.refresh_from_db()
    assert repo.failed_deletion_count == 1


def test_deletion_of_a_missing_repository_is_skipped(db):
    assert deletion.delete_repository(repository_id=987654).result == "skipped"


def test_failed_attempts_wait_two_to_the_n_minutes_then_delete_failed(project, dead_registry):
    repo = scheduled(project)
    now = T0
    for n in range(10):
        outcome = deletion.delete_repository(repository_id=repo.pk, now=now)
        assert outcome.result == "rescheduled"
        repo.refresh_from_db()
        assert repo.status == Status.DELETE_SCHEDULED
        assert repo.failed_deletion_count == n + 1
        assert repo.delete_started_at is None
        wait = repo.next_delete_attempt_at - now
        base = dt.timedelta(minutes=2**n)
        assert base <= wait <= base * (1 + deletion.BACKOFF_JITTER_FRACTION), (n, wait)
        # Not due a second before the wait is over.
        early = repo.next_delete_attempt_at - dt.timedelta(seconds=1)
        assert deletion.delete_repository(repository_id=repo.pk, now=early).result == "skipped"
        now = repo.next_delete_attempt_at
    # The tenth retry (eleventh attempt) fails: no more tries.
    assert deletion.delete_repository(repository_id=repo.pk, now=now).result == "failed"
    repo.refresh_from_db()
    assert repo.status == Status.DELETE_FAILED
    assert repo.failed_deletion_count == 10
    assert repo.next_delete_attempt_at is None
    far_future = now + dt.timedelta(days=365)
    assert deletion.schedule_due_deletions(now=far_future) == []
    assert deletion.delete_repository(repository_id=repo.pk, now=far_future).result == "skipped"


def test_every_failure_records_its_error_and_time(project, dead_registry):
    repo = scheduled(project)
    deletion.delete_repository(repository_id=repo.pk, now=T0)
    repo.refresh_from_db()
    assert repo.last_deletion_error_at == T0
    assert "TransientRegistryError" in repo.last_deletion_error
    assert f"/v2/{repo.path}/tags/list" in repo.last_deletion_error
    assert "Bearer" not in repo.last_deletion_error


def test_registry_still_listing_tags_after_deletion_counts_as_a_failure(project):
    repo = scheduled(project)
    outcome = deletion.delete_repository(
        repository_id=repo.pk, now=T0, client=FakeClient(tags=["a", "b"], remaining=["b"])
    )
    assert outcome.result == "rescheduled"
    repo.refresh_from_db()
    assert "1 tag(s) still in the registry" in repo.last_deletion_error
    assert ContainerRepository.objects.filter(pk=repo.pk).exists()


def test_unexpected_error_is_recorded_and_raised(project):
    repo = scheduled(project)
    with pytest.raises(KeyError):
        deletion.delete_repository(repository_id=repo.pk, now=T0, client=FakeClient(crash=KeyError("boom")))
    repo.refresh_from_db()
    assert repo.status == Status.DELETE_SCHEDULED
    assert repo.failed_deletion_count == 1
    assert "KeyError" in repo.last_deletion_error


def test_successful_deletion_removes_the_row(project):
    repo = scheduled(project)
    outcome = deletion.delete_repository(repository_id=repo.pk, now=T0, client=FakeClient(tags=["v1", "v2"]))
    assert (outcome.result, outcome.deleted_tags) == ("deleted", 2)
    assert not ContainerRepository.objects.filter(pk=repo.pk).exists()


def test_deletion_log_line_has_the_tag_count_before_and_the_count_deleted(project, caplog):
    repo = scheduled(project)
    with caplog.at_level("INFO", logger="container_registry.deletion"):
        deletion.delete_repository(repository_id=repo.pk, now=T0, client=FakeClient(tags=["v1", "v2", "v3"]))
    (line,) = [r for r in caplog.records if r.getMessage() == "container repository deleted"]
    assert (line.tags_size_before_delete, line.deleted_tags_size) == (3, 3)
    assert line.path == repo.path


def test_a_row_that_cannot_be_removed_after_its_tags_are_gone_is_a_failed_attempt(project, caplog):
    """A real fault: a trigger makes the DELETE of the row fail once the tags are gone."""
    repo = scheduled(project)
    with db_faults.refused_deletes("container_repositories"):
        outcome = deletion.delete_repository(repository_id=repo.pk, now=T0, client=FakeClient(tags=["v1", "v2"]))
        assert outcome.result == "rescheduled"
        repo.refresh_from_db()
        # Not left delete_ongoing for the stale reset: counted, and backed off like any failure.
        assert repo.status == Status.DELETE_SCHEDULED
        assert repo.failed_deletion_count == 1
        assert repo.delete_started_at is None
        assert MINUTE <= repo.next_delete_attempt_at - T0 <= MINUTE * (1 + deletion.BACKOFF_JITTER_FRACTION)
        assert db_faults.MESSAGE in repo.last_deletion_error and repo.last_deletion_error_at == T0
        (line,) = [r for r in caplog.records if r.getMessage() == "container repository deletion failed"]
        assert (line.tags_size_before_delete, line.deleted_tags_size) == (2, 2)
        # The backoff is the one of every failure, up to delete_failed after the tenth retry.
        ContainerRepository.objects.filter(pk=repo.pk).update(failed_deletion_count=10)
        later = repo.next_delete_attempt_at
        assert deletion.delete_repository(repository_id=repo.pk, now=later, client=FakeClient()).result == "failed"
        assert ContainerRepository.objects.get(pk=repo.pk).status == Status.DELETE_FAILED
    # Once the row can go, a retry removes it.
    ContainerRepository.objects.filter(pk=repo.pk).update(status=Status.DELETE_SCHEDULED, next_delete_attempt_at=None)
    assert deletion.delete_repository(repository_id=repo.pk, now=later, client=FakeClient()).result == "deleted"
    assert not ContainerRepository.objects.filter(pk=repo.pk).exists()


def test_stale_ongoing_deletion_goes_back_without_counting_a_failure(project):
    stale = ContainerRepository.objects.create(
        project=project,
        name="stale",
        status=Status.DELETE_ONGOING,
        delete_started_at=T0 - dt.timedelta(minutes=31),
        failed_deletion_count=3,
    )
    fresh = ContainerRepository.objects.create(
        project=project, name="fresh", status=Status.DELETE_ONGOING, delete_started_at=T0 - dt.timedelta(minutes=29)
    )
    assert deletion.schedule_due_deletions(now=T0) == [stale.pk]
    stale.refresh_from_db()
    fresh.refresh_from_db()
    assert (stale.status, stale.failed_deletion_count, stale.delete_started_at) == (Status.DELETE_SCHEDULED, 3, None)
    assert fresh.status == Status.DELETE_ONGOING


def test_scheduler_returns_due_repositories_oldest_wait_first(project):
    later = scheduled(project, "later", next_delete_attempt_at=T0 - MINUTE)
    never_failed = scheduled(project, "never")
    earlier = scheduled(project, "earlier", next_delete_attempt_at=T0 - 5 * MINUTE)
    scheduled(project, "not-yet", next_delete_attempt_at=T0 + MINUTE)
    due = deletion.schedule_due_deletions(now=T0)
    assert set(due) == {later.pk, never_failed.pk, earlier.pk}
    assert due.index(earlier.pk) < due.index(later.pk)


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("GET http://user:s3cr3t@registry:5000/v2/: refused", "s3cr3t"),
        ("header Authorization: Bearer abc.def-ghi rejected", "abc.def-ghi"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl leaked", "eyJzdWIiOiJ4In0"),
        ("POST /jwt/auth?private_token=glpat-XYZ&x=1 failed", "glpat-XYZ"),
    ],
)
def test_error_messages_are_stored_without_secrets(message, secret):
    scrubbed = deletion.scrub_error(message)
    assert secret not in scrubbed
    assert "[FILTERED]" in scrubbed


def test_long_error_messages_are_cut():
    assert len(deletion.scrub_error("x" * 5000)) == deletion.MAX_ERROR_LENGTH


# --- Project deletion ---------------------------------------------------------------------------


def test_project_deletion_request_schedules_every_repository(project):
    active = ContainerRepository.objects.create(project=project, name="active")
    failed = ContainerRepository.objects.create(
        project=project, name="failed", status=Status.DELETE_FAILED, failed_deletion_count=10
    )
    ongoing = ContainerRepository.objects.create(
        project=project, name="ongoing", status=Status.DELETE_ONGOING, delete_started_at=timezone.now()
    )
    project.pending_delete = True
    project.save()
    project_deletion_requested.send(sender=Project, project=project)
    active.refresh_from_db()
    failed.refresh_from_db()
    ongoing.refresh_from_db()
    assert active.status == Status.DELETE_SCHEDULED
    assert (failed.status, failed.failed_deletion_count) == (Status.DELETE_SCHEDULED, 0)
    assert ongoing.status == Status.DELETE_ONGOING
    assert Project.objects.filter(pk=project.pk).exists()


def test_pending_project_goes_with_its_last_repository(project):
    first = scheduled(project, "first")
    second = scheduled(project, "second")
    project.pending_delete = True
    project.save()
    deletion.delete_repository(repository_id=first.pk, now=T0, client=FakeClient())
    assert Project.objects.filter(pk=project.pk).exists()
    deletion.delete_repository(repository_id=second.pk, now=T0, client=FakeClient())
    assert not Project.objects.filter(pk=project.pk).exists()


def test_project_not_pending_deletion_stays_when_its_repositories_go(project):
    repo = scheduled(project)
    deletion.delete_repository(repository_id=repo.pk, now=T0, client=FakeClient())
    assert Project.objects.filter(pk=project.pk).exists()


def test_scheduler_removes_drained_pending_projects(project):
    # As if the last two repositories had gone at the same moment in two workers.
    Project.objects.filter(pk=project.pk).update(pending_delete=True)
    deletion.schedule_due_deletions(now=T0)
    assert not Project.objects.filter(pk=project.pk).exists()


def test_deleting_a_project_row_with_repositories_still_works(project):
    ContainerRepository.objects.create(project=project, name="a")
    ContainerRepository.objects.create(project=project, name="b")
    Project.objects.filter(pk=project.pk).update(pending_delete=True)
    Project.objects.get(pk=project.pk).delete()
    assert not ContainerRepository.objects.filter(project_id=project.pk).exists()


def test_deleting_a_project_through_the_service_deletes_its_repositories_first(project, dead_registry):
    from projects.services import request_project_deletion

    repo = ContainerRepository.objects.create(project=project, name="app")
    request_project_deletion(project=project)
    repo.refresh_from_db()
    assert repo.status == Status.DELETE_SCHEDULED
    assert Project.objects.get(pk=project.pk).pending_delete
    # The registry is down: the row and the project stay until the images are gone.
    assert deletion.delete_repository(repository_id=repo.pk).result == "rescheduled"
    assert Project.objects.filter(pk=project.pk).exists()
    later = timezone.now() + dt.timedelta(minutes=2)
    assert deletion.delete_repository(repository_id=repo.pk, now=later, client=FakeClient(tags=["v1"])).result == (
        "deleted"
    )
    assert not Project.objects.filter(pk=project.pk).exists()
