"""The administrator's way back from ``delete_failed``: maintenance function, commands,
admin page."""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from container_registry import maintenance
from container_registry.models import ContainerRepository
from tests_support.factories import make_group, make_project, make_user
from tests_support.registry import free_port

Status = ContainerRepository.Status


@pytest.fixture
def projects(db):
    acme = make_group("acme")
    return make_project(acme, "svc"), make_project(acme, "other")


def failed(project, name, error="TransientRegistryError: GET /v2/x/tags/list: ConnectionError"):
    return ContainerRepository.objects.create(
        project=project,
        name=name,
        status=Status.DELETE_FAILED,
        failed_deletion_count=10,
        last_deletion_error=error,
        last_deletion_error_at=dt.datetime(2025, 3, 1, tzinfo=dt.UTC),
    )


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_retry_all_puts_failed_repositories_back_with_ten_more_tries(projects):
    a, b = failed(projects[0], "a"), failed(projects[1], "b")
    active = ContainerRepository.objects.create(project=projects[0], name="active")
    output = run("retry_failed_deletions", "--all")
    assert "2 repositories scheduled for deletion" in output
    assert "ten more tries" in output
    for repo in (a, b):
        repo.refresh_from_db()
        assert (repo.status, repo.failed_deletion_count, repo.next_delete_attempt_at) == (
            Status.DELETE_SCHEDULED,
            0,
            None,
        )
        # The last error stays visible until a deletion succeeds.
        assert repo.last_deletion_error
    active.refresh_from_db()
    assert active.status is None


def test_retry_by_project_path_or_id_touches_only_that_project(projects):
    svc, other = projects
    mine, theirs = failed(svc, "mine"), failed(other, "theirs")
    assert "acme/svc/mine" in run("retry_failed_deletions", "--project", "ACME/svc")
    theirs.refresh_from_db()
    assert theirs.status == Status.DELETE_FAILED
    run("retry_failed_deletions", "--project", str(other.pk))
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == theirs.status == Status.DELETE_SCHEDULED


def test_retry_one_repository_and_report_one_that_had_not_failed(projects):
    repo = failed(projects[0], "img")
    run("retry_failed_deletions", "--repository", str(repo.pk))
    repo.refresh_from_db()
    assert repo.status == Status.DELETE_SCHEDULED
    output = run("retry_failed_deletions", "--repository", str(repo.pk))
    assert "left alone: status is delete_scheduled" in output
    assert "nothing to do" in output


def test_dry_run_changes_nothing(projects):
    repo = failed(projects[0], "img")
    output = run("retry_failed_deletions", "--all", "--dry-run")
    assert "would be scheduled" in output
    assert "Dry run" in output
    repo.refresh_from_db()
    assert (repo.status, repo.failed_deletion_count) == (Status.DELETE_FAILED, 10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "one of the arguments"),
        (("--all", "--project", "acme/svc"), "not allowed with"),
        (("--project", "nope/nothing"), "project 'nope/nothing' not found"),
        (("--repository", "99999"), "container repository 99999 not found"),
    ],
)
def test_bad_selection_is_a_clear_error(projects, args, message):
    with pytest.raises(CommandError, match=message):
        run("retry_failed_deletions", *args)


def test_maintenance_function_needs_exactly_one_selection(projects):
    with pytest.raises(ValueError):
        maintenance.retry_failed_deletions()
    with pytest.raises(ValueError):
        maintenance.retry_failed_deletions(all=True, repository_id=1)
    assert maintenance.retry_failed_deletions(all=True).count == 0


def test_process_repository_deletions_reports_a_summary(projects, settings, registry_keys):
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"  # refuses connections: a real failure
    repo = ContainerRepository.objects.create(project=projects[0], name="img", status=Status.DELETE_SCHEDULED)
    output = run("process_repository_deletions")
    assert f"{repo.pk}\tacme/svc/img\trescheduled: TransientRegistryError" in output
    assert "1 due, 0 deleted, 1 rescheduled" in output
    # Not due again for a minute: a second run finds nothing.
    assert "0 due" in run("process_repository_deletions")


def test_a_foreground_run_stamps_each_claim_when_it_is_made(projects, settings, registry_keys, monkeypatch):
    # A claim dated back to the start of a long run would be reset as stale (30 minutes)
    # while it is still being worked on. The spy only records what the real claim did.
    import time

    from django.utils import timezone

    from container_registry import deletion

    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{free_port()}"  # refuses connections: a real failure
    for name in ("one", "two"):
        ContainerRepository.objects.create(project=projects[0], name=name, status=Status.DELETE_SCHEDULED)
    claims = []
    real_claim = deletion.claim_repository_for_deletion

    def recording_claim(**kwargs):
        repository = real_claim(**kwargs)
        claims.append(repository.delete_started_at)
        return repository

    monkeypatch.setattr(deletion, "claim_repository_for_deletion", recording_claim)
    started = timezone.now()
    maintenance.process_repository_deletions(progress=lambda outcome: time.sleep(0.2))

    assert len(claims) == 2
    assert claims[0] >= started
    assert claims[1] - claims[0] >= dt.timedelta(seconds=0.2)


# --- Admin --------------------------------------------------------------------------------------


@pytest.fixture
def admin_client_(client, db):
    client.force_login(make_user("root", admin=True, is_staff=True))
    return client


def test_admin_lists_failed_deletions_with_count_and_last_error(admin_client_, projects):
    failed(projects[0], "broken", error="PermanentRegistryError: DELETE /v2/acme/svc/broken: 405 UNSUPPORTED")
    ContainerRepository.objects.create(project=projects[0], name="fine")
    url = reverse("admin:container_registry_containerrepository_changelist") + "?deletion=failed"
    page = admin_client_.get(url).content.decode()
    assert "acme/svc/broken" in page
    assert "405 UNSUPPORTED" in page
    assert "acme/svc/fine" not in page
    assert "Retry deletion (ten more tries)" in page


def test_admin_retry_action_schedules_the_deletion_again(admin_client_, projects):
    repo = failed(projects[0], "broken")
    url = reverse("admin:container_registry_containerrepository_changelist")
    response = admin_client_.post(url, {"action": "retry_deletion", "_selected_action": [repo.pk]}, follow=True)
    assert "10 more tries follow" in response.content.decode()
    repo.refresh_from_db()
    assert (repo.status, repo.failed_deletion_count) == (Status.DELETE_SCHEDULED, 0)


def test_admin_detail_page_shows_the_full_last_error(admin_client_, projects):
    error = "PermanentRegistryError: " + "x" * 300 + " END"
    repo = failed(projects[0], "broken", error=error)
    url = reverse("admin:container_registry_containerrepository_change", args=[repo.pk])
    page = admin_client_.get(url).content.decode()
    assert error in page
    assert "acme/svc/broken" in page


def test_admin_cannot_delete_repository_rows_that_would_orphan_images(admin_client_, projects):
    repo = failed(projects[0], "broken")
    url = reverse("admin:container_registry_containerrepository_delete", args=[repo.pk])
    assert admin_client_.post(url, {"post": "yes"}).status_code == 403
    assert ContainerRepository.objects.filter(pk=repo.pk).exists()
