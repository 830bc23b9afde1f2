"""The project's registry size: which events ask for a refresh, the debounce, the refresh
itself and the API's ``statistics``. Sizes against the real registry are in
test_statistics_e2e.py."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from container_registry import statistics
from container_registry.models import ProjectRegistryStatistics
from container_registry.services import mark_registry_size_stale
from container_registry.statistics import pending_key, refresh_registry_size, refresh_stale_sizes
from container_registry.tests.conftest import envelope, envelope_with
from tests_support.factories import make_project, make_token
from workers import statistics as statistics_tasks

pytestmark = pytest.mark.django_db

PUSH_TAG = "push-manifest-oci.json"
PUSH_BY_DIGEST = "push-manifest-oci-with-references.json"


@pytest.fixture
def project(captured_world):
    project = captured_world["project"]
    cache.delete(pending_key(project.pk))
    yield project
    cache.delete(pending_key(project.pk))


def test_a_burst_of_tag_pushes_enqueues_one_delayed_refresh(post_events, project, size_refreshes, settings):
    settings.REGISTRY_SIZE_REFRESH_DELAY_SECONDS = 45
    for tag in ("v1", "v2", "v3"):
        assert post_events(envelope_with(PUSH_TAG, tag=tag, id=f"push-{tag}")).status_code == 200
    assert size_refreshes == [(project.pk, 45)]
    assert ProjectRegistryStatistics.objects.get(project=project).stale


def test_a_pending_refresh_costs_the_enqueuing_process_no_cache_round_trip(
    post_events, project, size_refreshes, monkeypatch
):
    post_events(envelope_with(PUSH_TAG, tag="v1", id="first"))
    calls = []
    monkeypatch.setattr(statistics.cache, "add", lambda *args, **kwargs: calls.append(args) or True)
    post_events(envelope_with(PUSH_TAG, tag="v2", id="second"))
    assert calls == []
    assert len(size_refreshes) == 1


def test_another_process_sees_the_pending_key_and_enqueues_nothing(post_events, project, size_refreshes):
    post_events(envelope_with(PUSH_TAG, tag="v1", id="first"))
    statistics._enqueued_here.clear()  # as in another web process
    post_events(envelope_with(PUSH_TAG, tag="v2", id="second"))
    assert len(size_refreshes) == 1


def test_another_process_asks_the_cache_again_only_after_a_second(post_events, project, size_refreshes):
    post_events(envelope_with(PUSH_TAG, tag="v1", id="first"))
    statistics._enqueued_here.clear()  # as in another web process
    post_events(envelope_with(PUSH_TAG, tag="v2", id="second"))  # finds the key pending: noted
    # The refresh starts (its key dropped) within the second: this process does not ask
    # the cache (it would find no key and enqueue); the size stays stale for the sweep.
    cache.delete(pending_key(project.pk))
    post_events(envelope_with(PUSH_TAG, tag="v3", id="third"))
    assert len(size_refreshes) == 1
    assert ProjectRegistryStatistics.objects.get(project=project).stale
    # A second later it asks again.
    statistics._enqueued_elsewhere.clear()
    post_events(envelope_with(PUSH_TAG, tag="v4", id="fourth"))
    assert len(size_refreshes) == 2


@pytest.mark.parametrize(
    "name",
    ["delete-tag.json", "delete-manifest.json"],
    ids=["delete-of-a-tag", "delete-of-a-digest"],
)
def test_deletes_of_a_tag_or_a_digest_ask_for_a_refresh(post_events, project, size_refreshes, name):
    ProjectRegistryStatistics.objects.create(project=project, container_registry_size=5, stale=False)
    assert post_events(envelope(name)).status_code == 200
    assert size_refreshes == [(project.pk, 60)]
    assert ProjectRegistryStatistics.objects.get(project=project).stale


def test_a_push_by_digest_a_delete_without_digest_and_pulls_ask_for_nothing(post_events, project, size_refreshes):
    ProjectRegistryStatistics.objects.create(project=project, container_registry_size=5, stale=False)
    post_events(envelope(PUSH_TAG))  # the row exists, so pulls are counted
    size_refreshes.clear()
    statistics._enqueued_here.clear()
    cache.delete(pending_key(project.pk))
    ProjectRegistryStatistics.objects.filter(project=project).update(stale=False)

    assert post_events(envelope_with(PUSH_BY_DIGEST, tag=None, id="by-digest")).status_code == 200
    assert post_events(envelope_with("delete-tag.json", tag=None, id="neither")).status_code == 200
    assert post_events(envelope("pull-manifest-oci-by-tag.json")).status_code == 200
    assert post_events(envelope("pull-manifest-docker-v2-by-tag.json")).status_code == 200
    assert size_refreshes == []
    assert not ProjectRegistryStatistics.objects.get(project=project).stale


def test_an_event_after_the_refresh_started_enqueues_the_next(post_events, project, size_refreshes, registry_down):
    post_events(envelope_with(PUSH_TAG, tag="v1", id="first"))
    statistics._enqueued_here.clear()  # the worker is another process
    ProjectRegistryStatistics.objects.filter(project=project).update(stale=True)
    with pytest.raises(Exception):  # noqa: B017 -- the registry is down; what matters is the key
        refresh_registry_size(project_id=project.pk)
    post_events(envelope_with(PUSH_TAG, tag="v2", id="second"))
    assert len(size_refreshes) == 2
    # A failed refresh leaves the size owed.
    assert ProjectRegistryStatistics.objects.get(project=project).stale


def test_a_broker_outage_never_fails_the_receiver_and_the_next_event_asks_again(
    post_events, project, size_refreshes, monkeypatch
):
    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(statistics_tasks.refresh_registry_size, "apply_async", broker_down)
    assert post_events(envelope_with(PUSH_TAG, tag="v1", id="first")).status_code == 200
    assert cache.get(pending_key(project.pk)) is None
    assert ProjectRegistryStatistics.objects.get(project=project).stale
    monkeypatch.undo()
    monkeypatch.setattr(
        statistics_tasks.refresh_registry_size,
        "apply_async",
        lambda args, countdown, **options: size_refreshes.append((args[0], countdown)),
    )
    post_events(envelope_with(PUSH_TAG, tag="v2", id="second"))
    assert size_refreshes == [(project.pk, 60)]


def test_the_sweep_asks_again_for_stale_sizes_without_a_pending_refresh(captured_world, size_refreshes):
    stale, fresh = captured_world["project"], captured_world["other"]
    for p in (stale, fresh):
        cache.delete(pending_key(p.pk))
    ProjectRegistryStatistics.objects.create(project=stale, stale=True)
    ProjectRegistryStatistics.objects.create(project=fresh, stale=False)
    assert refresh_stale_sizes() == [stale.pk]
    statistics._enqueued_here.clear()
    assert refresh_stale_sizes() == []  # still pending: the key holds it
    assert size_refreshes == [(stale.pk, 60)]
    cache.delete(pending_key(stale.pk))


def test_refresh_of_a_project_without_repositories_stores_zero(project):
    ProjectRegistryStatistics.objects.create(project=project, container_registry_size=123, stale=True)
    assert refresh_registry_size(project_id=project.pk) == 0
    stats = ProjectRegistryStatistics.objects.get(project=project)
    assert (stats.container_registry_size, stats.stale) == (0, False)
    assert stats.refreshed_at is not None


def test_refresh_of_a_deleted_project_does_nothing(db):
    assert refresh_registry_size(project_id=987654) is None


# --- GET /projects/:id?statistics=true ----------------------------------------------------


def get_project(world, role, **params):
    client = APIClient()
    client.credentials(HTTP_PRIVATE_TOKEN=make_token(world["users"][role]))
    return client.get(f"/api/v4/projects/{world['project'].pk}", params)


def test_reporter_sees_the_registry_size_in_statistics(world):
    ProjectRegistryStatistics.objects.create(project=world["project"], container_registry_size=4242, stale=False)
    body = get_project(world, "reporter", statistics="true").json()
    assert body["statistics"]["container_registry_size"] == 4242
    assert body["statistics"]["storage_size"] == 0
    assert "statistics" not in get_project(world, "reporter").json()


def test_statistics_of_a_never_measured_project_are_zero(world):
    assert get_project(world, "owner", statistics="true").json()["statistics"]["container_registry_size"] == 0


def test_guest_gets_no_statistics_as_in_gitlab(world):
    ProjectRegistryStatistics.objects.create(project=world["project"], container_registry_size=1, stale=False)
    response = get_project(world, "guest", statistics="true")
    assert response.status_code == 200
    assert "statistics" not in response.json()


def test_bad_statistics_flag_is_400(world):
    response = get_project(world, "reporter", statistics="maybe")
    assert (response.status_code, response.json()) == (400, {"error": "statistics is invalid"})


@pytest.fixture
def registry_down(unreachable_registry):
    return unreachable_registry


def test_a_refresh_that_finds_the_size_stale_again_asks_for_the_next(project, size_refreshes, monkeypatch):
    ProjectRegistryStatistics.objects.create(project=project, stale=True)

    def measure_while_an_event_arrives(project_id, client=None):
        # A push lands while the registry is being read: its flag is set again. (Standing
        # in for that timing, which a test cannot produce on demand.)
        ProjectRegistryStatistics.objects.filter(project_id=project_id).update(stale=True)
        return 42

    monkeypatch.setattr(statistics, "project_registry_size", measure_while_an_event_arrives)
    assert refresh_registry_size(project_id=project.pk) == 42
    assert size_refreshes == [(project.pk, 60)]
    assert ProjectRegistryStatistics.objects.get(project=project).stale

    monkeypatch.setattr(statistics, "project_registry_size", lambda project_id, client=None: 42)
    cache.delete(pending_key(project.pk))
    statistics._enqueued_here.clear()
    size_refreshes.clear()
    assert refresh_registry_size(project_id=project.pk) == 42
    assert size_refreshes == []  # nothing came in meanwhile


def test_marking_sizes_stale_takes_any_number_of_projects_and_skips_those_gone(captured_world):
    project, other = captured_world["project"], captured_world["other"]
    third = make_project(project.namespace, "third")
    ProjectRegistryStatistics.objects.create(project=other, container_registry_size=5, stale=False)
    gone = max(project.pk, other.pk, third.pk) + 1_000
    mark_registry_size_stale(project_ids=set())
    assert not ProjectRegistryStatistics.objects.filter(stale=True).exists()
    mark_registry_size_stale(project_ids={other.pk, gone, project.pk})
    rows = ProjectRegistryStatistics.objects.values_list("project_id", "stale", "container_registry_size")
    # The known size stays until the refresh replaces it; a project not named is untouched.
    assert sorted(rows) == sorted([(project.pk, True, 0), (other.pk, True, 5)])
