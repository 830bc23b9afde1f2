"""Cleanup policies against the real registry (distribution 2.8) and skopeo.

Images carry known creation times (the config's ``created``); tags listed together share
one image, hence one digest. Runs go through the scheduler and the policy-run service
(the same calls the Celery tasks make); ``test_cleanup_celery_live`` adds the real worker.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml
from django.core.cache import cache
from django.utils import timezone

from container_registry import cleanup
from container_registry.errors import TransientRegistryError
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.scheduling import repositories_to_start, run_policy_cleanup, schedule_cleanup_policies
from gitlab_core.models import ApplicationSettings
from projects.models import AccessLevel, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import build_image, list_tags, skopeo, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cleanup_brake_off")]


def ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


@pytest.fixture
def pusher(db):
    user = make_user("cleaner")
    project = make_project(make_group("acme"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    cache.clear()
    return project, user, f"cleaner:{make_token(user, scopes=['api', 'write_registry', 'read_registry'])}"


def push(registry, tmp_path, project, creds, images: dict[str, tuple[float, list[str]]], name: str = "app"):
    """``images``: image key -> (age in days, tags sharing that image)."""
    path = f"{project.full_path}/{name}"
    for key, (age, tags) in images.items():
        source = build_image(tmp_path / f"layout-{name}", size=512, created=ago(age), seed=key, tag=key)
        for tag in tags:
            skopeo("copy", source, registry.ref(path, tag), creds=creds)
    repository, _ = ContainerRepository.objects.get_or_create(project=project, name=name)
    return repository


def remaining(registry, creds, path: str) -> list[str]:
    return list_tags(registry, path, creds=creds)


def digest(registry, creds, path: str, tag: str) -> str:
    return json.loads(skopeo("inspect", registry.ref(path, tag), creds=creds).stdout)["Digest"]


def enable_policy(project, **rules) -> None:
    policy = ContainerExpirationPolicy.objects.get(project=project)
    for key, value in {"enabled": True, "keep_n": None, "older_than": None, "name_regex_keep": None, **rules}.items():
        setattr(policy, key, value)
    policy.save()
    ContainerExpirationPolicy.objects.filter(pk=policy.pk).update(next_run_at=timezone.now() - dt.timedelta(minutes=1))


def run_scheduled(repository) -> str:
    """One scheduler pass and the run it starts for ``repository``."""
    assert repository.pk in schedule_cleanup_policies().to_start
    return run_policy_cleanup(repository_id=repository.pk).result


IMAGES = {
    "base": (365, ["latest", "main"]),
    "one": (200, ["v1", "v1-keep"]),
    "two": (100, ["v2"]),
    "three": (50, ["v3"]),
    "four": (3, ["v4"]),
}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({"name_regex": "v.*"}, ["latest", "main"]),
        ({"name_regex": "v.*", "name_regex_keep": ".*-keep"}, ["latest", "main", "v1-keep"]),
        ({"name_regex": ".*", "keep_n": 2}, ["latest", "v3", "v4"]),
        ({"name_regex": ".*", "older_than": "30d"}, ["latest", "v4"]),
        (
            {"name_regex": "v.*", "name_regex_keep": ".*-keep", "keep_n": 1, "older_than": "90d"},
            ["latest", "main", "v1-keep", "v3", "v4"],
        ),
    ],
    ids=["delete-regex", "keep-regex", "keep-n", "older-than", "all-rules"],
)
def test_policy_rules_leave_exactly_the_expected_tags(registry, pusher, tmp_path, rules, expected):
    project, _user, creds = pusher
    repository = push(registry, tmp_path, project, creds, IMAGES)
    before = digest(registry, creds, repository.path, "v1-keep")
    enable_policy(project, **rules)

    assert run_scheduled(repository) == "finished"

    assert remaining(registry, creds, repository.path) == expected
    # Every surviving tag still resolves, including one that shared its digest with a
    # deleted tag (v1-keep and v1).
    for tag in expected:
        skopeo("inspect", registry.ref(repository.path, tag), creds=creds)
    if "v1-keep" in expected:
        assert digest(registry, creds, repository.path, "v1-keep") == before
    repository.refresh_from_db()
    assert repository.last_cleanup_deleted_tags_count == 7 - len(expected)
    assert repository.last_cleanup_stop_reason == "finished"


def test_a_repository_larger_than_the_per_run_maximum_is_cleaned_over_several_runs(registry, pusher, tmp_path):
    project, _user, creds = pusher
    images = {f"old{i:02d}": (100 + i, [f"old{i:02d}"]) for i in range(12)}
    repository = push(registry, tmp_path, project, creds, {**images, "young": (1, ["young"])})
    settings = ApplicationSettings.current()
    settings.container_registry_cleanup_tags_service_max_list_size = 5
    settings.save()
    enable_policy(project, name_regex=".*", older_than="7d")

    assert run_scheduled(repository) == "unfinished"
    # The oldest five went first.
    assert remaining(registry, creds, repository.path) == sorted([f"old{i:02d}" for i in range(7)] + ["young"])
    repository.refresh_from_db()
    assert repository.expiration_policy_cleanup_status == "cleanup_unfinished"
    assert repository.last_cleanup_stop_reason == "tags_limit"

    # Resumed first, without waiting for the policy's next run.
    assert repositories_to_start(include_errored=False) == [repository.pk]
    assert run_policy_cleanup(repository_id=repository.pk).result == "unfinished"
    assert run_policy_cleanup(repository_id=repository.pk).result == "finished"
    assert remaining(registry, creds, repository.path) == ["young"]


def test_a_tag_pushed_again_between_runs_of_one_cleanup_is_decided_on_its_new_image(registry, pusher, tmp_path):
    project, _user, creds = pusher
    images = {f"i{i}": (60 - 10 * i, [f"t{i}"]) for i in range(6)}  # t5 is the newest
    repository = push(registry, tmp_path, project, creds, images)
    settings = ApplicationSettings.current()
    settings.container_registry_cleanup_tags_service_max_list_size = 2
    settings.save()
    enable_policy(project, name_regex=".*", keep_n=1)
    assert run_scheduled(repository) == "unfinished"
    assert remaining(registry, creds, repository.path) == ["t2", "t3", "t4", "t5"]

    # Between two runs of the cleanup, t2 becomes the newest image; the runs that follow
    # must not trust the date the first run read for it.
    repository.refresh_from_db()
    pushes = repository.push_count
    push(registry, tmp_path, project, creds, {"fresh": (0.5, ["t2"])})
    wait_until(lambda: ContainerRepository.objects.get(pk=repository.pk).push_count > pushes, message="push event")
    # Each run deletes at most the per-run maximum: a few more runs finish the cleanup.
    results = [run_policy_cleanup(repository_id=repository.pk).result for _ in range(5)]
    assert "unfinished" not in results[1:]

    assert remaining(registry, creds, repository.path) == ["t2"]


def test_a_registry_failing_mid_run_leaves_it_unfinished_and_it_resumes(registry, pusher, tmp_path, monkeypatch):
    project, _user, creds = pusher
    repository = push(registry, tmp_path, project, creds, {f"i{i}": (100, [f"t{i}"]) for i in range(6)})
    enable_policy(project, name_regex="t.*")
    monkeypatch.setattr(cleanup, "DELETE_BATCH_SIZE", 2)

    def stop_after_first_batch(deleted: int, total: int) -> None:
        registry.stop()

    schedule_cleanup_policies()
    outcome = run_policy_cleanup(repository_id=repository.pk, progress=stop_after_first_batch)
    assert outcome.result == "unfinished"
    assert isinstance(outcome.error, TransientRegistryError)
    repository.refresh_from_db()
    assert repository.expiration_policy_cleanup_status == "cleanup_unfinished"
    # As in GitLab, only a finished run records its count; the outcome has what went.
    assert len(outcome.cleanup.deleted) == 2 and repository.last_cleanup_deleted_tags_count is None
    assert repository.expiration_policy_completed_at is None
    assert repository.last_cleanup_stop_reason.startswith("registry_error")

    registry.start()
    assert len(remaining(registry, creds, repository.path)) == 4
    assert run_policy_cleanup(repository_id=repository.pk).result == "finished"
    assert remaining(registry, creds, repository.path) == []


def set_read_only(registry, read_only: bool) -> None:
    """Restart the registry with its storage in read-only maintenance mode (or out of
    it): it then refuses every write, the re-pointing PUT of a tag deletion included."""
    config = yaml.safe_load(registry.config_path.read_text())
    config["storage"].setdefault("maintenance", {})["readonly"] = {"enabled": read_only}
    registry.config_path.write_text(yaml.safe_dump(config))
    registry.stop()
    registry.start()


def test_a_run_whose_every_tag_the_registry_refuses_ends_unfinished_with_the_error(registry, pusher, tmp_path):
    project, _user, creds = pusher
    repository = push(registry, tmp_path, project, creds, {"a": (100, ["v1"]), "b": (90, ["v2"]), "c": (1, ["new"])})
    enable_policy(project, name_regex="v1")
    # A first cleanup deletes v1 (and leaves the small config blob tag deletions use).
    assert run_scheduled(repository) == "finished"
    assert remaining(registry, creds, repository.path) == ["new", "v2"]

    set_read_only(registry, True)
    enable_policy(project, name_regex="v.*")
    # Due now, after the first run started (the helper backdates it by a minute).
    ContainerExpirationPolicy.objects.filter(project=project).update(next_run_at=timezone.now())
    outcome = run_scheduled(repository)

    assert outcome == "unfinished"
    repository.refresh_from_db()
    assert repository.expiration_policy_cleanup_status == "cleanup_unfinished"
    assert repository.last_cleanup_stop_reason == f"registry_error: could not delete tags of {repository.path}: v2"
    assert repository.last_cleanup_deleted_tags_count is None
    set_read_only(registry, False)
    assert remaining(registry, creds, repository.path) == ["new", "v2"]
    # The hourly scheduler resumes it once the registry accepts writes again.
    assert repository.pk in schedule_cleanup_policies().to_start
    assert run_policy_cleanup(repository_id=repository.pk).result == "finished"
    assert remaining(registry, creds, repository.path) == ["new"]


def test_dry_run_api_shows_every_decision_and_deletes_nothing(registry, pusher, tmp_path, client):
    project, user, creds = pusher
    repository = push(registry, tmp_path, project, creds, IMAGES)
    enable_policy(project, name_regex="v.*", name_regex_keep=".*-keep", keep_n=1, older_than="90d")
    token = make_token(user)

    response = client.get(
        f"/api/v4/projects/{project.pk}/registry/repositories/{repository.pk}/cleanup_plan", HTTP_PRIVATE_TOKEN=token
    )

    assert response.status_code == 200, response.content
    body = response.json()
    decisions = {t["name"]: (t["decision"], t["rule"]) for t in body["tags"]}
    assert decisions == {
        "latest": ("keep", "latest"),
        "main": ("keep", "name_regex_delete"),
        "v1-keep": ("keep", "name_regex_keep"),
        "v1": ("delete", "older_than"),
        "v2": ("delete", "older_than"),
        "v3": ("keep", "older_than"),
        "v4": ("keep", "keep_n"),
    }
    assert body["summary"]["delete"] == 2 and body["rules"]["source"] == "policy"
    assert len(remaining(registry, creds, repository.path)) == 7


def test_bulk_delete_through_the_api_and_its_task(
    registry, pusher, tmp_path, client, django_capture_on_commit_callbacks
):
    from workers.cleanup import cleanup_tags

    project, user, creds = pusher
    repository = push(registry, tmp_path, project, creds, IMAGES)
    token = make_token(user)
    url = f"/api/v4/projects/{project.pk}/registry/repositories/{repository.pk}/tags"
    sent = []
    cleanup_tags.delay_on_commit, original = (lambda *args: sent.append(args)), cleanup_tags.delay_on_commit
    try:
        response = client.delete(f"{url}?name_regex_delete=.*&keep_n=2", HTTP_PRIVATE_TOKEN=token)
    finally:
        cleanup_tags.delay_on_commit = original
    assert response.status_code == 202
    assert cleanup_tags.apply(args=sent[0]).get() == {"deleted": 4, "status": "finished"}
    assert remaining(registry, creds, repository.path) == ["latest", "v3", "v4"]


def test_run_cleanup_policy_command_plans_then_deletes(registry, pusher, tmp_path):
    import io

    from django.core.management import call_command

    project, _user, creds = pusher
    repository = push(registry, tmp_path, project, creds, IMAGES)
    policy = ContainerExpirationPolicy.objects.get(project=project)
    policy.name_regex, policy.older_than, policy.keep_n = "v.*", None, None
    policy.save()  # disabled: the command runs it anyway

    out = io.StringIO()
    call_command("run_cleanup_policy", "--project", project.full_path, "--dry-run", stdout=out, stderr=io.StringIO())
    assert "acme/svc/app:v2\tdelete\tname_regex_delete" in out.getvalue()
    assert "Dry run: 5 of 7 tags in 1 repositories would be deleted." in out.getvalue()
    assert len(remaining(registry, creds, repository.path)) == 7

    out = io.StringIO()
    call_command("run_cleanup_policy", "--project", str(project.pk), stdout=out, stderr=io.StringIO())
    assert "acme/svc/app:v1-keep\tdeleted" in out.getvalue()
    assert "5 tags deleted from 1 repositories (0 unfinished)." in out.getvalue()
    assert remaining(registry, creds, repository.path) == ["latest", "main"]
