"""The brake on mass deletion: the first run of a changed policy that would delete too
many tags deletes none, holds the repository with its plan until a release or a policy
change, and is audited. Runs use ``FakeRegistryClient`` in place of the registry (the
real registry and a real worker: ``test_cleanup_celery_live``)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from container_registry.brake import PLAN_TAG_NAMES, held_repository_count
from container_registry.cleanup_rules import Brake
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.scheduling import repositories_to_start, run_policy_cleanup, schedule_cleanup_policies
from container_registry.tests.test_cleanup_service import FakeRegistryClient, days_ago, old_tags
from container_registry.tests.test_policy_scheduling import make_due
from gitlab_core.models import ApplicationSettings, AuditEvent
from tests_support.factories import make_token, make_user

Status = ContainerRepository.CleanupStatus


def set_brake(**values) -> None:
    settings = ApplicationSettings.current()
    for key, value in values.items():
        setattr(settings, f"container_registry_cleanup_brake_{key}", value)
    settings.save()


@pytest.fixture
def repository(world):
    """A repository that existed when its project's policy was set: the policy's first
    run on it goes through the brake."""
    created = ContainerRepository.objects.create(project=world["project"], name="app")
    make_due(world["project"], name_regex="t.*")
    return created


def run(repository, client) -> str:
    ContainerRepository.objects.filter(pk=repository.pk).update(expiration_policy_cleanup_status=Status.SCHEDULED)
    return run_policy_cleanup(repository_id=repository.pk, client=client).result


def release_url(repository) -> str:
    return f"/api/v4/projects/{repository.project_id}/registry/repositories/{repository.pk}/cleanup/release"


def as_user(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(user))
    return client


@pytest.mark.parametrize(
    ("delete", "total", "max_tags", "max_percent", "trips"),
    [
        (1001, 5000, 1000, 50, True),  # more than the count
        (1000, 5000, 1000, 50, False),  # exactly the count
        (6, 10, 1000, 50, True),  # more than half
        (5, 10, 1000, 50, False),  # exactly half
        (5000, 5000, 0, 0, False),  # both limits off
        (10, 10, 0, 100, False),  # 100 % can never be exceeded
        (0, 0, 1000, 50, False),  # an empty repository
    ],
)
def test_the_brake_trips_only_beyond_a_limit(delete, total, max_tags, max_percent, trips):
    assert Brake(max_tags=max_tags, max_percent=max_percent).trips(delete=delete, total=total) is trips


def test_a_first_run_beyond_the_limit_deletes_nothing_and_holds_the_repository(world, repository):
    make_due(world["project"], name_regex="t.*", older_than="7d")
    client = FakeRegistryClient({**old_tags(150), "tnew": timezone.now(), "latest": days_ago(200)})

    assert run(repository, client) == "held"

    assert len(client.tags) == 152 and client.calls["delete_tags"] == 0
    row = ContainerRepository.objects.get(pk=repository.pk)
    assert row.expiration_policy_cleanup_status == Status.HELD
    assert row.last_cleanup_stop_reason == "held" and row.cleanup_held_at is not None
    plan = row.cleanup_held_plan
    assert (plan["tags"], plan["delete"], plan["keep"]) == (152, 150, 2)
    assert (plan["brake_tags"], plan["brake_percent"]) == (1000, 50)
    # Bounded: the oldest ones, as the run would delete them first.
    assert len(plan["delete_tags"]) == PLAN_TAG_NAMES and plan["delete_tags_truncated"] is True
    assert plan["delete_tags"][0]["name"] == "t149"
    assert held_repository_count() == 1
    event = AuditEvent.objects.get(event_name="container_repository_cleanup_held")
    assert event.entity_id == world["project"].pk and event.details["target_id"] == repository.pk
    assert "would delete 150 of 152 tags" in event.details["custom_message"]


def test_the_count_limit_holds_a_run_that_deletes_a_small_share(repository):
    set_brake(tags=20)
    client = FakeRegistryClient({**old_tags(25), **{f"t-new{i}": timezone.now() for i in range(100)}})
    make_due(repository.project, name_regex="t.*", older_than="7d")
    assert run(repository, client) == "held"
    assert len(client.tags) == 125


def test_a_held_repository_is_not_scheduled_again_until_released(world, repository):
    client = FakeRegistryClient(old_tags(10))
    assert run(repository, client) == "held"
    revision = ContainerExpirationPolicy.objects.get(project=world["project"]).rules_revision
    make_due(world["project"], name_regex="t.*")  # due again, with the same rules
    assert ContainerExpirationPolicy.objects.get(project=world["project"]).rules_revision == revision

    report = schedule_cleanup_policies()

    assert repository.pk not in report.to_start
    assert ContainerRepository.objects.get(pk=repository.pk).expiration_policy_cleanup_status == Status.HELD


def test_release_lets_the_next_run_delete_and_later_runs_are_not_braked(world, repository):
    client = FakeRegistryClient(old_tags(10))
    assert run(repository, client) == "held"

    response = as_user(world["users"]["maintainer"]).post(release_url(repository))

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cleanup_policy_held_at"] is None and body["cleanup_policy_held_plan"] is None
    assert repository.pk in repositories_to_start()
    assert held_repository_count() == 0
    assert AuditEvent.objects.filter(event_name="container_repository_cleanup_released").count() == 1
    assert run_policy_cleanup(repository_id=repository.pk, client=client).result == "finished"
    assert client.tags == {}
    # Later runs of the unchanged policy delete whatever they select, even all of it.
    client.tags.update(old_tags(10, prefix="tt"))
    assert run(repository, client) == "finished"
    assert client.tags == {}


def test_a_run_under_the_limit_records_the_revision_and_later_mass_deletions_proceed(world, repository):
    client = FakeRegistryClient({**old_tags(2), **{f"keep{i}": None for i in range(8)}})
    assert run(repository, client) == "finished"
    client.tags.update(old_tags(50, prefix="tx"))
    assert run(repository, client) == "finished"
    assert sorted(client.tags) == [f"keep{i}" for i in range(8)]


def test_changing_the_policy_lifts_the_hold_and_brakes_the_new_first_run(world, repository):
    client = FakeRegistryClient(old_tags(10))
    assert run(repository, client) == "held"

    make_due(world["project"], name_regex="t00.*")  # a new regex: a new revision

    row = ContainerRepository.objects.get(pk=repository.pk)
    assert (row.expiration_policy_cleanup_status, row.cleanup_held_plan) == (Status.UNSCHEDULED, None)
    assert run(repository, client) == "held"  # still all ten tags: the new policy's first run
    make_due(world["project"], name_regex="t00[0-3]")
    assert run(repository, client) == "finished"
    assert sorted(client.tags) == [f"t00{i}" for i in range(4, 10)]


def test_with_the_brake_off_a_first_run_deletes(repository):
    set_brake(enabled=False)
    client = FakeRegistryClient(old_tags(10))
    assert run(repository, client) == "finished"
    assert client.tags == {}
    assert held_repository_count() == 0


@pytest.mark.parametrize(("role", "status"), [("developer", 403), ("reporter", 403), ("outsider", 404)])
def test_only_maintainers_release(world, repository, role, status):
    assert run(repository, FakeRegistryClient(old_tags(10))) == "held"
    assert as_user(world["users"][role]).post(release_url(repository)).status_code == status
    assert ContainerRepository.objects.get(pk=repository.pk).expiration_policy_cleanup_status == Status.HELD


def test_releasing_a_repository_that_is_not_held_is_a_400(world, repository):
    response = as_user(world["users"]["maintainer"]).post(release_url(repository))
    assert response.status_code == 400
    assert response.json() == {"message": "The cleanup policy of this container repository is not held"}


def test_the_api_shows_the_held_plan(world, repository):
    assert run(repository, FakeRegistryClient(old_tags(10))) == "held"
    response = as_user(world["users"]["developer"]).get(f"/api/v4/projects/{world['project'].pk}/registry/repositories")
    (entity,) = response.json()
    assert entity["cleanup_policy_held_at"] is not None
    assert entity["cleanup_policy_held_plan"]["delete"] == 10


def test_an_administrator_releases_in_the_admin(world, repository):
    assert run(repository, FakeRegistryClient(old_tags(10))) == "held"
    browser = Client()
    browser.force_login(make_user("root", admin=True))
    page = browser.get(f"/admin/container_registry/containerrepository/{repository.pk}/change/")
    assert b"Would delete 10 of 10 tags" in page.content

    response = browser.post(
        "/admin/container_registry/containerrepository/",
        {"action": "release_held_cleanup", "_selected_action": [repository.pk]},
        follow=True,
    )

    assert b"Released: acme/platform/svc/app" in response.content
    assert ContainerRepository.objects.get(pk=repository.pk).expiration_policy_cleanup_status == Status.SCHEDULED
    assert AuditEvent.objects.filter(event_name="container_repository_cleanup_released").count() == 1


def test_a_release_approves_the_held_revision_only(world, repository):
    client = FakeRegistryClient(old_tags(10))
    assert run(repository, client) == "held"
    # The policy changes while the hold is being written (the run read the old one): the
    # repository is held with the old revision's plan.
    ContainerExpirationPolicy.objects.filter(project=world["project"]).update(rules_revision=99)

    assert as_user(world["users"]["maintainer"]).post(release_url(repository)).status_code == 201

    assert run_policy_cleanup(repository_id=repository.pk, client=client).result == "held"
    assert len(client.tags) == 10


def test_a_new_repository_under_an_unchanged_policy_is_not_braked(world):
    from container_registry.brake import brake_for

    policy = ContainerExpirationPolicy.objects.get(project=world["project"])
    policy.enabled, policy.name_regex = True, ".*"
    policy.save()
    fresh = ContainerRepository.objects.create(project=world["project"], name="fresh-image")
    assert brake_for(fresh, policy) is None
    # A change of the rules brakes its first run.
    policy.keep_n = 5
    policy.save()
    fresh.refresh_from_db()
    assert brake_for(fresh, policy) is not None
