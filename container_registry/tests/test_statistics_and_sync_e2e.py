"""``registry_sync`` and the registry size against the real registry (distribution 2.8):
images pushed with skopeo through our realm, the registry's notifications reaching our
receiver, python-gitlab reading the result."""

from __future__ import annotations

import datetime as dt
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from container_registry import client as client_module
from container_registry import statistics
from container_registry.maintenance import registry_sync
from container_registry.models import ContainerExpirationPolicy, ContainerRepository, ProjectRegistryStatistics
from container_registry.scheduling import run_policy_cleanup, schedule_cleanup_policies
from container_registry.statistics import refresh_registry_size
from container_registry.tests.test_e2e_registry import stored_bytes
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import build_image, list_tags, skopeo, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "password123"
IMAGES = ("acme/svc", "acme/svc/0cli", "acme/svc/tools/cli", "acme/team/api/web")


@pytest.fixture
def pushed(registry, tmp_path):
    owner = make_user("owner", password=PASSWORD)
    acme = make_group("acme", owner=owner)
    svc = make_project(acme, "svc", creator=owner)
    api = make_project(make_group("team", parent=acme, owner=owner), "api", creator=owner)
    creds = f"owner:{PASSWORD}"
    layout = tmp_path / "layout"
    old = build_image(layout, size=20_000, seed="old", created=timezone.now() - dt.timedelta(days=100), tag="old")
    new = build_image(layout, size=30_000, seed="new", created=timezone.now() - dt.timedelta(days=1), tag="new")
    for path in IMAGES:
        skopeo("copy", old, registry.ref(path, "old"), creds=creds)
        skopeo("copy", new, registry.ref(path, "new"), creds=creds)
    wait_until(lambda: ContainerRepository.objects.filter(push_count=2).count() == len(IMAGES), message="pushes")
    return {"owner": owner, "svc": svc, "api": api, "creds": creds}


def repository_paths() -> set[str]:
    return {repo.path for repo in ContainerRepository.objects.select_related("project")}


def test_sync_brings_back_removed_rows_and_a_cleanup_policy_acts_on_them(registry, pushed):
    assert repository_paths() == set(IMAGES)
    ContainerRepository.objects.all().delete()

    report = registry_sync()

    assert repository_paths() == set(IMAGES)
    assert ContainerRepository.objects.get(project=pushed["api"], name="web")
    assert ContainerRepository.objects.get(project=pushed["svc"], name="tools/cli")
    # The real registry lists "acme/svc/0cli" before "acme/svc": the merge walk agrees.
    assert (report.created, report.missing, report.missing_checked) == (4, 0, True)
    assert registry_sync().created == 0

    policy = ContainerExpirationPolicy.objects.get(project=pushed["svc"])
    policy.enabled, policy.name_regex, policy.keep_n, policy.older_than = True, ".*", 1, None
    policy.save()
    ContainerExpirationPolicy.objects.filter(pk=policy.pk).update(next_run_at=timezone.now())
    started = schedule_cleanup_policies().to_start
    assert len(started) == 3  # the project's three images, all adopted by the sync
    for repository_id in started:
        assert run_policy_cleanup(repository_id=repository_id).result == "finished"
    for path in IMAGES[:3]:
        assert list_tags(registry, path, creds=pushed["creds"]) == ["new"]
    assert list_tags(registry, "acme/team/api/web", creds=pushed["creds"]) == ["new", "old"]


def test_sync_of_one_project_follows_small_catalog_pages_and_reports_lost_rows(registry, pushed, monkeypatch):
    ContainerRepository.objects.all().delete()
    ContainerRepository.objects.create(project=pushed["api"], name="lost")
    monkeypatch.setattr(client_module, "CATALOG_PAGE_SIZE", 1)
    out, err = StringIO(), StringIO()
    call_command("registry_sync", "--project", "acme/team/api", stdout=out, stderr=err)
    assert sorted(out.getvalue().splitlines()) == ["created\tacme/team/api/web", "not in registry\tacme/team/api/lost"]
    # Only that project's rows; one catalog path per page. distribution ends its first
    # page ("acme/svc/0cli", then its parent's turn) without a Link: the client asks on.
    assert repository_paths() == {"acme/team/api/web", "acme/team/api/lost"}
    assert int(re.search(r"in (\d+) pages", err.getvalue()).group(1)) >= 3


def test_the_debounced_refresh_shows_the_registry_size_through_python_gitlab(
    registry, pushed, live_server, gitlab_client, size_refreshes
):
    svc, api = pushed["svc"], pushed["api"]
    # Eight tag pushes (notifications) for svc, each one a single refresh request.
    assert sorted({project_id for project_id, _countdown in size_refreshes}) == sorted([svc.pk, api.pk])
    assert len(size_refreshes) == 2
    assert ProjectRegistryStatistics.objects.get(project=svc).stale

    for project_id, _countdown in size_refreshes:  # what the worker does when they are due
        refresh_registry_size(project_id=project_id)

    gl = gitlab_client(live_server.url, make_token(pushed["owner"]))
    expected = stored_bytes(registry.data_dir, ["acme/svc", "acme/svc/0cli", "acme/svc/tools/cli"])
    project = gl.projects.get(svc.pk, statistics=True)
    assert project.statistics["container_registry_size"] == expected > 0
    assert gl.projects.get("acme/team/api", statistics=True).statistics["container_registry_size"] == stored_bytes(
        registry.data_dir, ["acme/team/api/web"]
    )
    assert not ProjectRegistryStatistics.objects.get(project=svc).stale

    # A tag deleted through the API asks for the next refresh. The refresh above ran
    # early (by hand); a worker runs it when due, after this process's note expired.
    size_refreshes.clear()
    statistics._enqueued_here.clear()
    for repository in gl.projects.get(svc.pk).repositories.list(get_all=True):
        repository.tags.delete("old")
    wait_until(lambda: size_refreshes, message="the delete events")
    assert size_refreshes == [(svc.pk, 60)]
    refresh_registry_size(project_id=svc.pk)
    smaller = stored_bytes(registry.data_dir, ["acme/svc", "acme/svc/0cli", "acme/svc/tools/cli"])
    assert gl.projects.get(svc.pk, statistics=True).statistics["container_registry_size"] == smaller < expected
