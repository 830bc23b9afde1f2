"""Cleanup policies driven by a real Celery beat and worker on Redis (not eager mode),
against the real registry. Runs in the PostgreSQL + Redis pass of the test script.

Beat itself is proven once (``test_beat_and_worker_run_due_policies_to_the_end``). The
rule table of ``test_cleanup_e2e`` and a registry that dies mid-run then go through the
scheduler task sent to one worker shared by the class (starting a worker per case would
cost seconds each); the tags that remain are checked with skopeo.
"""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.tests import test_cleanup_e2e
from container_registry.tests.test_cleanup_e2e import IMAGES, enable_policy, push, remaining
from container_registry.tests.test_cleanup_speed import push_tags
from gitlab_core.models import ApplicationSettings
from projects.models import AccessLevel, ProjectMember
from tests_support.celery_live import live_celery
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import create_registry
from tests_support.registry_fixtures import NOTIFICATION_PATH, _require_tools
from workers.cleanup import schedule_cleanup_policies

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.celery_live,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("cleanup_brake_off"),
]

# Beat fires a crontab entry at the next whole minute; allow for that and the runs.
DEADLINE_SECONDS = 150
# A policy run sent straight to the worker takes a second or two.
RUN_DEADLINE_SECONDS = 60


def rule_cases() -> list:
    """The parametrized rule/combination table of ``test_cleanup_e2e``, read from its
    mark so that both suites check the same cases."""
    # Imported through the module: a test function imported by name would run here too.
    table = test_cleanup_e2e.test_policy_rules_leave_exactly_the_expected_tags
    mark = next(m for m in table.pytestmark if m.name == "parametrize")
    _names, values = mark.args
    return [pytest.param(*case, id=case_id) for case, case_id in zip(values, mark.kwargs["ids"], strict=True)]


def wait_for(predicate, celery, what: str, *, timeout: float = DEADLINE_SECONDS, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        assert celery.alive(), f"a Celery process exited while waiting for {what}:\n{celery.log()}"
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}:\n{celery.log()}")


def run_ended(repository: ContainerRepository) -> bool:
    """The repository's policy run finished: back to ``cleanup_unscheduled`` with a
    completion time."""
    row = ContainerRepository.objects.get(pk=repository.pk)
    return (
        row.expiration_policy_cleanup_status == "cleanup_unscheduled" and row.expiration_policy_completed_at is not None
    )


def maintainer_project(prefix: str) -> tuple:
    """A fresh project (its own path: the class's registry keeps earlier cases' images)
    and skopeo credentials of a maintainer."""
    user = make_user("cleaner")
    project = make_project(make_group(f"{prefix}-{uuid.uuid4().hex[:8]}"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    cache.clear()
    return project, f"cleaner:{make_token(user, scopes=['api', 'write_registry', 'read_registry'])}"


def test_beat_and_worker_run_due_policies_to_the_end(registry, tmp_path):
    user = make_user("live")
    project = make_project(make_group("beat-group"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    creds = f"live:{make_token(user, scopes=['api', 'write_registry', 'read_registry'])}"
    images = {f"old{i}": (100 + i, [f"old{i}"]) for i in range(5)}
    repository = push(registry, tmp_path, project, creds, {**images, "young": (1, ["young"])})
    other = push(registry, tmp_path, project, creds, {"o1": (100, ["v1"]), "o2": (100, ["v2"])}, name="other")
    settings = ApplicationSettings.current()
    settings.container_registry_cleanup_tags_service_max_list_size = 2  # several resumed runs
    settings.save()
    enable_policy(project, name_regex=".*", older_than="7d", cadence="7d")
    due_at = ContainerExpirationPolicy.objects.get(project=project).next_run_at

    def done() -> bool:
        rows = ContainerRepository.objects.filter(pk__in=[repository.pk, other.pk])
        return all(
            r.expiration_policy_cleanup_status == "cleanup_unscheduled" and r.expiration_policy_completed_at
            for r in rows
        )

    # Every minute instead of minute 50, so that the test need not wait an hour.
    with live_celery(beat=True, env={"CLEANUP_POLICY_CRON_MINUTE": "*"}) as celery:
        wait_for(done, celery, "both repositories to be cleaned")

    assert remaining(registry, creds, repository.path) == ["young"]
    assert remaining(registry, creds, other.path) == []
    repository.refresh_from_db()
    assert repository.last_cleanup_stop_reason == "finished"
    policy = ContainerExpirationPolicy.objects.get(project=project)
    assert policy.next_run_at > timezone.now() + timezone.timedelta(days=6)
    assert policy.next_run_at != due_at


@pytest.fixture(scope="class")
def worker_and_registry(live_server, registry_keys, django_db_setup, tmp_path_factory):
    """One registry and one worker for every test of the class. The function-scoped
    ``registry`` fixture cannot be shared: the worker reads the registry's address and
    keys from its environment when it starts. ``django_db_setup`` first, so that the
    worker connects to the test database."""
    _require_tools()
    secret = uuid.uuid4().hex
    instance = create_registry(
        work_dir=tmp_path_factory.mktemp("shared-registry"),
        realm=f"{live_server.url}/jwt/auth",
        issuer=django_settings.REGISTRY_ISSUER,
        cert_bundle=registry_keys.cert_path,
        notification_url=f"{live_server.url}{NOTIFICATION_PATH}",
        notification_secret=secret,
    )
    overrides = override_settings(
        REGISTRY_KEY_PATH=str(registry_keys.key_path),
        REGISTRY_CERT_PATH=str(registry_keys.cert_path),
        REGISTRY_EXTRA_KEY_PATHS=[],
        REGISTRY_NOTIFICATION_SECRET=secret,
        REGISTRY_API_URL=instance.url,
        REGISTRY_HOST_PORT=instance.host_port,
    )
    overrides.enable()
    try:
        instance.start()
        with live_celery() as celery:
            yield instance, celery
    finally:
        instance.stop()
        overrides.disable()


class TestPoliciesThroughARealWorker:
    """The scheduler task goes through the broker to a real worker (no beat, no eager
    mode); the test waits for the repository's run to end, then lists its tags."""

    @pytest.mark.parametrize(("rules", "expected"), rule_cases())
    def test_each_rule_leaves_exactly_the_expected_tags(self, worker_and_registry, tmp_path, rules, expected):
        registry, celery = worker_and_registry
        project, creds = maintainer_project("rules")
        repository = push(registry, tmp_path, project, creds, IMAGES)
        enable_policy(project, **rules)

        schedule_cleanup_policies.delay()
        wait_for(lambda: run_ended(repository), celery, "the policy run", timeout=RUN_DEADLINE_SECONDS, interval=0.2)

        assert remaining(registry, creds, repository.path) == expected
        repository.refresh_from_db()
        assert repository.last_cleanup_stop_reason == "finished"
        assert repository.last_cleanup_deleted_tags_count == 7 - len(expected)
        policy = ContainerExpirationPolicy.objects.get(project=project)
        assert policy.next_run_at > timezone.now()

    def test_a_registry_failing_mid_run_leaves_it_unfinished_and_it_resumes(self, worker_and_registry, tmp_path):
        registry, celery = worker_and_registry
        project, creds = maintainer_project("failing")
        path = f"{project.full_path}/app"
        doomed = [f"t{i:03d}" for i in range(300)]
        # One image under every tag: the kept ones share its digest with the deleted ones.
        push_tags(registry, tmp_path, path, ["latest", "keep-me", *doomed])
        repository, _ = ContainerRepository.objects.get_or_create(project=project, name="app")
        settings = ApplicationSettings.current()
        settings.container_registry_cleanup_tags_service_max_list_size = 25  # a dozen chained runs
        settings.save()
        enable_policy(project, name_regex="t.*")

        schedule_cleanup_policies.delay()

        claims = set()

        def second_run_going() -> bool:
            # A first run ended (unfinished at the per-run maximum) and the worker has
            # claimed the repository again (a new start time): stop the registry under
            # that run.
            status, started_at = ContainerRepository.objects.values_list(
                "expiration_policy_cleanup_status", "expiration_policy_started_at"
            ).get(pk=repository.pk)
            if status == "cleanup_ongoing":
                claims.add(started_at)
            return len(claims) >= 2

        wait_for(second_run_going, celery, "a resumed run to start", timeout=RUN_DEADLINE_SECONDS, interval=0.01)
        registry.stop()

        def stopped_by_the_registry() -> bool:
            row = ContainerRepository.objects.get(pk=repository.pk)
            return row.expiration_policy_cleanup_status == "cleanup_unfinished" and (
                row.last_cleanup_stop_reason.startswith("registry_error")
            )

        wait_for(stopped_by_the_registry, celery, "the run to stop on the registry error", timeout=RUN_DEADLINE_SECONDS)
        # No run of this cleanup finished: no completion time, no count (each claim cleared it).
        row = ContainerRepository.objects.get(pk=repository.pk)
        assert (row.expiration_policy_completed_at, row.last_cleanup_deleted_tags_count) == (None, None)

        registry.start()
        left = remaining(registry, creds, path)
        assert {"latest", "keep-me"} <= set(left)
        # The first run (25 tags) ended before the stop, the last one did not.
        assert 2 < len(left) <= 2 + 300 - 25, f"{len(left)} tags left"
        # The policy is no longer due: the scheduler resumes unfinished runs anyway.
        assert ContainerExpirationPolicy.objects.get(project=project).next_run_at > timezone.now()
        schedule_cleanup_policies.delay()

        def finished() -> bool:
            row = ContainerRepository.objects.get(pk=repository.pk)
            return run_ended(repository) and row.last_cleanup_stop_reason == "finished"

        wait_for(finished, celery, "the resumed runs to finish", timeout=RUN_DEADLINE_SECONDS)
        assert remaining(registry, creds, path) == ["keep-me", "latest"]

    def test_the_scheduler_task_disables_policies_that_cannot_run_and_runs_the_others(
        self, worker_and_registry, tmp_path
    ):
        registry, celery = worker_and_registry
        valid, creds = maintainer_project("valid")
        cleaner = ProjectMember.objects.get(project=valid).user
        blank, empty = (
            make_project(make_group(f"{name}-{uuid.uuid4().hex[:8]}"), "svc") for name in ("blank", "empty")
        )
        ProjectMember.objects.create(project=blank, user=cleaner, access_level=AccessLevel.MAINTAINER)
        cleaned = push(registry, tmp_path, valid, creds, {"old": (100, ["v1"]), "new": (1, ["v2"])})
        enable_policy(valid, name_regex=".*", older_than="7d")
        untouched = push(registry, tmp_path, blank, creds, {"old": (100, ["v1"])})
        enable_policy(blank, name_regex="")
        enable_policy(empty, name_regex=".*")
        ContainerRepository.objects.filter(pk=cleaned.pk).update(last_cleanup_deleted_tags_count=9)

        schedule_cleanup_policies.delay()

        def policy(project) -> ContainerExpirationPolicy:
            return ContainerExpirationPolicy.objects.get(project=project)

        wait_for(lambda: run_ended(cleaned), celery, "the valid policy's run", timeout=RUN_DEADLINE_SECONDS)
        wait_for(lambda: not policy(blank).enabled, celery, "the blank policy to be disabled")
        assert remaining(registry, creds, cleaned.path) == ["v2"]
        assert ContainerRepository.objects.get(pk=cleaned.pk).last_cleanup_deleted_tags_count == 1
        assert policy(blank).disabled_reason == "invalid_policy: name_regex is blank"
        assert remaining(registry, creds, untouched.path) == ["v1"]
        assert (policy(empty).enabled, policy(empty).disabled_reason) == (False, "no_container_repositories")
        assert policy(valid).enabled and policy(valid).disabled_reason is None
