"""The cleanup-policy admin pages and the maintenance commands (without a registry;
``test_cleanup_e2e`` runs the command against the real one)."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from tests_support.factories import make_project

# The brake would hold most of these runs (see ``test_cleanup_brake``).
pytestmark = pytest.mark.usefixtures("cleanup_brake_off")


@pytest.fixture
def with_repository(world):
    return ContainerRepository.objects.create(project=world["project"], name="app")


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_report_lists_projects_with_repositories_and_a_disabled_policy(world, with_repository):
    make_project(world["platform"], "empty")  # disabled too, but has no repository
    output = run("cleanup_policy_report", "--disabled")
    assert "acme/platform/svc\t1 repositories" in output
    assert "empty" not in output


def test_enable_with_yes_enables_and_the_report_is_then_empty(world, with_repository):
    output = run("cleanup_policy_report", "--enable", "--yes")
    assert "Enabled the cleanup policy of 1 projects." in output
    assert ContainerExpirationPolicy.objects.get(project=world["project"]).enabled
    assert "Every project with container repositories has an enabled cleanup policy." in run(
        "cleanup_policy_report", "--disabled"
    )


def test_enable_asks_first_and_a_no_changes_nothing(world, with_repository, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda: "n")
    with pytest.raises(CommandError, match="Aborted"):
        run("cleanup_policy_report", "--enable")
    assert not ContainerExpirationPolicy.objects.get(project=world["project"]).enabled


def test_enable_skips_a_policy_that_would_be_invalid_and_fails(world, with_repository):
    ContainerExpirationPolicy.objects.filter(project=world["project"]).update(name_regex="")
    with pytest.raises(CommandError, match="1 could not be enabled"):
        run("cleanup_policy_report", "--enable", "--yes")


def test_run_cleanup_policy_of_an_unknown_project_fails(db):
    with pytest.raises(CommandError, match="not found"):
        run("run_cleanup_policy", "--project", "nope/nothing")


def test_run_cleanup_policy_exits_non_zero_when_the_registry_is_down(world, with_repository, unreachable_registry):
    with pytest.raises(CommandError, match="1 repositories failed"):
        run("run_cleanup_policy", "--project", "acme/platform/svc")
    repository = ContainerRepository.objects.get(pk=with_repository.pk)
    assert repository.expiration_policy_cleanup_status == "cleanup_unfinished"
    assert repository.last_cleanup_stop_reason.startswith("registry_error")


def test_admin_rejects_an_invalid_regex(client, admin, world):
    client.force_login(admin)
    url = f"/admin/container_registry/containerexpirationpolicy/{world['project'].pk}/change/"
    response = client.post(
        url,
        {
            "enabled": "on",
            "cadence": "1d",
            "keep_n": "10",
            "older_than": "90d",
            "name_regex": "(",
            "name_regex_keep": "",
        },
    )
    assert response.status_code == 200 and b"not valid RE2 syntax" in response.content
    assert not ContainerExpirationPolicy.objects.get(project=world["project"]).enabled


def test_admin_saves_a_valid_policy(client, admin, world):
    client.force_login(admin)
    url = f"/admin/container_registry/containerexpirationpolicy/{world['project'].pk}/change/"
    response = client.post(
        url,
        {
            "enabled": "on",
            "cadence": "7d",
            "keep_n": "5",
            "older_than": "30d",
            "name_regex": "v.*",
            "name_regex_keep": "main",
        },
    )
    assert response.status_code == 302
    policy = ContainerExpirationPolicy.objects.get(project=world["project"])
    assert (policy.enabled, policy.cadence, policy.keep_n, policy.name_regex) == (True, "7d", 5, "v.*")


def test_admin_dry_run_page_reports_an_unreachable_registry(
    client, admin, world, with_repository, unreachable_registry
):
    client.force_login(admin)
    response = client.get(f"/admin/container_registry/containerexpirationpolicy/{world['project'].pk}/dry-run/")
    assert response.status_code == 200
    assert b"acme/platform/svc/app" in response.content
    assert b"The registry could not be read" in response.content


def test_progress_of_a_run_over_several_rounds_counts_against_the_whole_run(world, with_repository, monkeypatch):
    from container_registry import client as registry_client
    from container_registry.maintenance import run_cleanup_policy
    from container_registry.tests.test_cleanup_service import FakeRegistryClient
    from gitlab_core.models import ApplicationSettings

    # The in-memory registry of the cleanup tests stands in for the HTTP client.
    registry = FakeRegistryClient({f"t{i:02d}": None for i in range(12)})
    monkeypatch.setattr(registry_client, "get_client", lambda: registry)
    app_settings = ApplicationSettings.current()
    app_settings.container_registry_cleanup_tags_service_max_list_size = 5  # three rounds: 5, 5, 2
    app_settings.save()
    ContainerExpirationPolicy.objects.filter(project=world["project"]).update(
        name_regex=".*", keep_n=None, older_than=None
    )
    lines = []

    runs = run_cleanup_policy(world["project"], progress=lambda path, done, total: lines.append((done, total)))

    assert (runs[0].status, len(runs[0].deleted), registry.tags) == ("finished", 12, {})
    assert all(done <= total for done, total in lines), lines
    assert lines[-1] == (12, 12)
    assert [done for done, _total in lines] == sorted(done for done, _total in lines)
