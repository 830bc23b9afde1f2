"""The notification receiver, replaying envelopes captured from distribution 2.8."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from unittest import mock

import pytest
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from container_registry import events as events_module
from container_registry import tag_cache
from container_registry.client import REGISTRY_CLIENT_SUBJECT
from container_registry.event_envelopes import parse_envelope
from container_registry.events import apply_events
from container_registry.models import ContainerRepository, ProjectRegistryStatistics, RegistryEvent
from container_registry.services import stale_sql
from container_registry.tests.conftest import EVENTS_URL, FIXTURES, SECRET, envelope, envelope_with
from tests_support.factories import make_group, make_project
from tests_support.wsgi import call_wsgi

PUSH_OCI = "push-manifest-oci.json"
PULL_BY_TAG = "pull-manifest-oci-by-tag.json"


def image_repository(project) -> ContainerRepository:
    return ContainerRepository.objects.get(project=project, name="image")


# --- authentication and content type ------------------------------------------------------


def test_wrong_or_missing_secret_is_401(post_events, captured_world):
    assert post_events(envelope(PUSH_OCI), secret="wrong").status_code == 401
    assert post_events(envelope(PUSH_OCI), secret=None).status_code == 401
    assert post_events(envelope(PUSH_OCI), secret=SECRET + "x").status_code == 401
    assert not ContainerRepository.objects.exists()


def test_receiver_refuses_everything_when_no_secret_is_configured(post_events, settings, captured_world):
    settings.REGISTRY_NOTIFICATION_SECRET = ""
    response = post_events(envelope(PUSH_OCI), secret="")
    assert response.status_code == 401
    assert response.json() == {"message": "401 Unauthorized"}


def test_plain_json_is_accepted_and_other_types_are_415(post_events, captured_world):
    assert post_events(envelope(PUSH_OCI), content_type="application/json").status_code == 200
    response = post_events(envelope(PULL_BY_TAG), content_type="text/plain")
    assert response.status_code == 415
    assert "error" in response.json()


def test_get_is_405(client, settings):
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    response = client.get(EVENTS_URL, HTTP_AUTHORIZATION=SECRET)
    assert response.status_code == 405
    response = call_wsgi("GET", EVENTS_URL, HTTP_AUTHORIZATION=SECRET)
    assert response.status_code == 405
    assert response.json() == {"message": "405 Method Not Allowed"}


def test_the_wsgi_door_takes_only_the_receiver_path(client, settings, captured_world):
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    # Every other path is Django's: the API answers a hidden project in its own shape.
    response = call_wsgi("GET", "/api/v4/projects/group/project", RAW_URI="/api/v4/projects/group%2Fproject")
    assert response.status_code == 404
    assert response.json() == {"message": "404 Project Not Found"}
    # The receiver's answers carry the headers a JSON endpoint needs.
    response = call_wsgi("POST", EVENTS_URL, envelope(PUSH_OCI), CONTENT_TYPE="application/json")
    assert response.status_code == 401
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_media_type_parameters_are_ignored(post_events, captured_world):
    ContainerRepository.objects.create(project=captured_world["project"], name="image")
    response = post_events(envelope(PUSH_OCI), content_type="application/json; charset=utf-8")
    assert response.status_code == 200
    assert image_repository(captured_world["project"]).push_count == 1


def test_a_body_above_the_upload_limit_is_413_and_changes_nothing(post_events, settings, captured_world):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = post_events(envelope(PUSH_OCI) + b" " * 1000)
    assert response.status_code == 413
    assert not RegistryEvent.objects.exists()


def test_an_unexpected_fault_in_the_wsgi_door_is_a_500_in_the_api_shape(settings, captured_world, caplog):
    # A fault we cannot cause for real without breaking the code: patched in.
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    with mock.patch("container_registry.events.apply_events", side_effect=RuntimeError("boom")):
        response = call_wsgi(
            "POST", EVENTS_URL, envelope(PUSH_OCI), CONTENT_TYPE="application/json", HTTP_AUTHORIZATION=SECRET
        )
    assert response.status_code == 500
    assert response.json() == {"message": "500 Internal Server Error"}
    assert "unexpected error answering /api/v4/container_registry_event/events" in caplog.text


# --- malformed bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"{}",
        b'{"events": {}}',
        b'{"events": [42]}',
        b'{"events": [{"action": "push", "target": {"repository": "group/project/image"}}]}',
        b'{"events": [{"id": "1", "target": {"repository": "group/project/image"}}]}',
        b'{"events": [{"id": "1", "action": "launch", "target": {"repository": "group/project/image"}}]}',
        b'{"events": [{"id": "1", "action": "push"}]}',
        b'{"events": [{"id": 7, "action": "push", "target": {"repository": "group/project"}}]}',
        # Nested deeper than any parser should follow (it was a RecursionError: a 500).
        b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"events": [], "n": NaN}',
    ],
)
def test_malformed_bodies_are_400_and_change_nothing(post_events, captured_world, body):
    response = post_events(body)
    assert response.status_code == 400
    assert "message" in response.json()
    assert not RegistryEvent.objects.exists()


def test_one_bad_event_rejects_the_whole_envelope_before_anything_is_applied(post_events, captured_world):
    good = json.loads(envelope(PUSH_OCI))["events"][0]
    body = json.dumps({"events": [good, {"id": "x", "action": "explode", "target": {"repository": "a"}}]})
    assert post_events(body.encode()).status_code == 400
    assert not ContainerRepository.objects.exists()


@pytest.mark.parametrize(
    "target",
    [
        {"tag": "v1"},
        {"repository": "", "tag": "v1"},
        {"repository": 42, "tag": "v1"},
        {"repository": "group/project/Image", "tag": "v1"},
        {"repository": "group//project", "tag": "v1"},
        {"repository": "group/project/image\x00", "tag": "v1"},
        {"repository": "group/project/" + "a" * 3000, "tag": "v1"},
    ],
    ids=["missing", "empty", "not-text", "upper-case", "empty-component", "nul", "too-long"],
)
def test_an_event_naming_no_valid_repository_is_skipped_and_the_rest_applied(
    post_events, captured_world, caplog, target
):
    ContainerRepository.objects.create(project=captured_world["project"], name="image")
    push = json.loads(envelope(PUSH_OCI))["events"][0]
    pull = json.loads(envelope(PULL_BY_TAG))["events"][0]
    skipped = {**push, "id": "skipped-event", "target": target}
    body = json.dumps({"events": [push, skipped, pull]}).encode()

    for _delivery in range(2):
        response = post_events(body)
        assert response.status_code == 200
        assert response.content == b""

    repository = image_repository(captured_world["project"])
    assert (repository.push_count, repository.pull_count) == (1, 1)
    assert set(RegistryEvent.objects.values_list("event_id", flat=True)) == {push["id"], pull["id"]}
    logged = [r for r in caplog.records if r.getMessage().startswith("registry event skipped")]
    assert [(r.event_id, r.event_action, r.event_index) for r in logged] == [("skipped-event", "push", 1)] * 2
    if isinstance(target.get("repository"), str):
        assert all(len(r.repository) <= 255 for r in logged)


def test_empty_envelope_is_acknowledged(post_events, db):
    assert post_events(b'{"events": []}').status_code == 200


# --- push ---------------------------------------------------------------------------------


def test_tag_push_creates_the_repository_and_counts_it(post_events, captured_world):
    response = post_events(envelope(PUSH_OCI))
    assert response.status_code == 200
    assert response.content == b""
    repository = image_repository(captured_world["project"])
    assert repository.push_count == 1
    assert repository.last_pushed_at == dt.datetime(2026, 11, 27, 12, 40, 0, 342791, tzinfo=dt.UTC)
    stats = ProjectRegistryStatistics.objects.get(project=captured_world["project"])
    assert stats.stale


def test_whole_push_sequence_counts_one_push(post_events, captured_world):
    for name in ("0001-push-blob-layer.json", "0002-push-blob-config.json", "0003-push-manifest-oci.json"):
        assert post_events(envelope(f"sequences/push-oci/{name}")).status_code == 200
    assert image_repository(captured_world["project"]).push_count == 1


def test_redelivered_push_is_applied_once(post_events, captured_world):
    for _ in range(3):
        assert post_events(envelope(PUSH_OCI)).status_code == 200
    assert image_repository(captured_world["project"]).push_count == 1
    assert RegistryEvent.objects.count() == 1


def test_many_events_in_one_envelope_with_a_duplicate_inside(post_events, captured_world):
    push = json.loads(envelope(PUSH_OCI))["events"][0]
    pull = json.loads(envelope(PULL_BY_TAG))["events"][0]
    body = json.dumps({"events": [push, pull, push, pull]}).encode()
    assert post_events(body).status_code == 200
    repository = image_repository(captured_world["project"])
    assert (repository.push_count, repository.pull_count) == (1, 1)


def test_reordered_envelopes_never_move_dates_backwards(post_events, captured_world):
    newer = envelope_with(PUSH_OCI, id="newer", timestamp="2030-01-02T00:00:00.123456789Z")
    older = envelope_with(PUSH_OCI, id="older", timestamp="2029-01-01T00:00:00Z")
    post_events(newer)
    post_events(older)
    repository = image_repository(captured_world["project"])
    assert repository.push_count == 2
    assert repository.last_pushed_at == dt.datetime(2030, 1, 2, 0, 0, 0, 123456, tzinfo=dt.UTC)


def test_our_own_dummy_manifest_push_is_not_a_users_push(post_events, captured_world):
    post_events(envelope(PUSH_OCI))
    for name in (
        "0028-push-blob-config.json",
        "0029-push-manifest-docker-v2-dummy-for-tag-delete.json",
        "0030-delete-manifest.json",
        "0031-delete-tag.json",
    ):
        assert post_events(envelope(f"sequences/tag-delete-recipe/{name}")).status_code == 200
    assert image_repository(captured_world["project"]).push_count == 1


def test_dummy_push_is_recognised_by_its_references_too(post_events, captured_world):
    body = envelope_with(
        "push-manifest-docker-v2-dummy-for-tag-delete.json",
        digest="sha256:" + "1" * 64,
        references=[
            {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 21,
                "digest": "sha256:4435000728ee66e6a80e55637fc22725c256b61de344a2ecdeaac6bdb36e8bc3",
            }
        ],
    )
    assert post_events(body).status_code == 200
    assert not ContainerRepository.objects.exists()


def test_push_for_a_project_that_does_not_exist_is_acknowledged(post_events, db):
    assert post_events(envelope(PUSH_OCI)).status_code == 200
    assert not ContainerRepository.objects.exists()


def test_events_never_revive_a_repository_being_deleted(post_events, captured_world):
    repository = ContainerRepository.objects.create(
        project=captured_world["project"], name="image", status=ContainerRepository.Status.DELETE_SCHEDULED
    )
    assert post_events(envelope(PUSH_OCI)).status_code == 200
    assert post_events(envelope(PULL_BY_TAG)).status_code == 200
    repository.refresh_from_db()
    assert (repository.push_count, repository.pull_count, repository.status) == (0, 0, "delete_scheduled")


def test_events_of_a_project_pending_deletion_are_ignored(post_events, captured_world):
    project = captured_world["project"]
    project.pending_delete = True
    project.save()
    assert post_events(envelope(PUSH_OCI)).status_code == 200
    assert not ContainerRepository.objects.exists()


def test_an_image_path_belongs_to_the_longest_matching_project(post_events, captured_world):
    # group/project/image is also a project of its own: its root image gets the push,
    # not the "image" repository of group/project.
    nested_group = make_group("project", parent=captured_world["project"].namespace)
    nested = make_project(nested_group, "image", creator=captured_world["owner"])
    shadowed = ContainerRepository.objects.create(project=captured_world["project"], name="image")
    root = ContainerRepository.objects.create(project=nested, name="")
    assert post_events(envelope(PUSH_OCI)).status_code == 200
    assert post_events(envelope(PULL_BY_TAG)).status_code == 200
    root.refresh_from_db()
    shadowed.refresh_from_db()
    assert (root.push_count, root.pull_count) == (1, 1)
    assert (shadowed.push_count, shadowed.pull_count) == (0, 0)


@pytest.mark.django_db(transaction=True)
def test_a_push_does_not_wait_for_another_push_of_the_same_project_to_commit(captured_world, settings):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's: SQLite has one writer at a time")
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    project = captured_world["project"]
    for name in ("first", "second"):
        ContainerRepository.objects.create(project=project, name=name)
    ProjectRegistryStatistics.objects.create(project=project, container_registry_size=0, stale=True)
    # Another receiver thread is inside the transaction of a push to "first": its
    # statements ran, its commit (a disk flush) has not returned yet.
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        with other.cursor() as cursor:
            cursor.execute(stale_sql("SELECT %s AS project_id"), [True, project.pk, True])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")
        try:
            body = envelope_with(PUSH_OCI, id="second-push", repository="group/project/second")
            response = call_wsgi("POST", EVENTS_URL, body, CONTENT_TYPE="application/json", HTTP_AUTHORIZATION=SECRET)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
        other.commit()
    finally:
        other.close()
    assert response.status_code == 200
    assert ContainerRepository.objects.get(project=project, name="second").push_count == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", [PUSH_OCI, PULL_BY_TAG])
def test_an_event_waiting_for_a_deletion_that_commits_changes_nothing(captured_world, unreachable_registry, name):
    project = captured_world["project"]
    repository = ContainerRepository.objects.create(project=project, name="image")
    events = parse_envelope(envelope_with(name, id="raced-event"))
    other = committer = None
    try:
        if connection.vendor == "postgresql":
            # The deletion has marked the row and not committed: the event waits for the
            # row and must see the deletion once it commits.
            connection.ensure_connection()
            waiting = connection.connection.info.backend_pid
            other = connection.get_new_connection(connection.get_connection_params())
            with other.cursor() as cursor:
                sql = "UPDATE container_repositories SET status = 'delete_scheduled' WHERE id = %s"
                cursor.execute(sql, [repository.pk])
            committer = threading.Thread(target=_commit_once_waited_for, args=(other, waiting))
            committer.start()
        else:  # one writer at a time: the deletion is simply first
            ContainerRepository.objects.filter(pk=repository.pk).update(status="delete_scheduled")
        outcome = apply_events(events)
    finally:
        if committer is not None:
            committer.join()
        if other is not None:
            other.close()
    repository.refresh_from_db()
    assert outcome.by_action == {(events[0].action, "ignored"): 1}
    assert (repository.push_count, repository.pull_count) == (0, 0)
    assert not RegistryEvent.objects.filter(event_id="raced-event").exists()
    assert not ProjectRegistryStatistics.objects.filter(project=project, stale=True).exists()


@pytest.mark.django_db(transaction=True)
def test_a_push_counts_on_a_row_created_after_its_statement_looked(captured_world, unreachable_registry, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: no row can appear between the statements")
    project = captured_world["project"]
    # The realm creates the row in a transaction that commits just after the push's
    # counting statement looked. That moment cannot be produced from outside: the
    # wrapper below only lets the commit happen there, around the real statement.
    created, commit = threading.Event(), threading.Event()

    def realm():
        try:
            with transaction.atomic():
                ContainerRepository.objects.create(project_id=project.pk, name="image")
                created.set()
                commit.wait(10)
        finally:
            connection.close()

    creator = threading.Thread(target=realm)
    creator.start()
    real = events_module._apply_counted
    looked = []

    def counted_then_commit(event, *, push):
        result = real(event, push=push)
        if not looked:
            looked.append(result.result)
            commit.set()
            creator.join()
        return result

    try:
        assert created.wait(10)
        monkeypatch.setattr(events_module, "_apply_counted", counted_then_commit)
        outcome = apply_events(parse_envelope(envelope_with(PUSH_OCI, id="late-row")))
    finally:
        commit.set()
        creator.join()
    assert looked == ["missing"]
    assert outcome.by_action == {("push", "applied"): 1}
    assert ContainerRepository.objects.get(project=project, name="image").push_count == 1


def _commit_once_waited_for(other, waiting_pid: int, timeout: float = 10.0) -> None:
    """Commit ``other``'s transaction once the backend ``waiting_pid`` waits for one of
    its locks (or after ``timeout``), so that the commit lands while the event waits."""
    deadline = time.monotonic() + timeout
    with other.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [other.info.backend_pid, waiting_pid])
            if cursor.fetchone()[0]:
                break
            time.sleep(0.01)
    other.commit()


# --- pull, delete, mount ------------------------------------------------------------------


def test_get_pulls_count_but_head_and_blob_pulls_do_not(post_events, captured_world):
    ContainerRepository.objects.create(project=captured_world["project"], name="image")
    for name in (PULL_BY_TAG, "pull-manifest-oci-by-tag-head.json", "pull-blob.json", "pull-blob-head.json"):
        assert post_events(envelope(name)).status_code == 200
    repository = image_repository(captured_world["project"])
    assert repository.pull_count == 1
    assert repository.last_pulled_at is not None


def test_pulls_by_our_own_registry_client_are_not_counted_but_anonymous_and_users_pulls_are(
    post_events, captured_world
):
    ContainerRepository.objects.create(project=captured_world["project"], name="image")
    # The captured pull was made by "alice"; the same pull under our client's token
    # subject, then with no actor at all (an anonymous pull of a public project).
    for actor in ({"name": REGISTRY_CLIENT_SUBJECT}, {"name": "alice"}, {}):
        document = json.loads(envelope(PULL_BY_TAG))
        document["events"][0]["actor"] = actor
        document["events"][0]["id"] = f"pull-by-{actor.get('name', 'anonymous')}"
        assert post_events(json.dumps(document).encode()).status_code == 200
    assert image_repository(captured_world["project"]).pull_count == 2


def test_the_actor_of_an_event_is_parsed_and_an_odd_one_is_no_actor():
    assert parse_envelope(envelope(PULL_BY_TAG))[0].actor == "alice"
    for odd in ("not-an-object", {"name": 7}, {"name": ""}):
        document = json.loads(envelope(PULL_BY_TAG))
        document["events"][0]["actor"] = odd
        event = parse_envelope(json.dumps(document).encode())[0]
        assert (event.actor, event.is_ours) == (None, False)


def test_pull_of_an_unknown_repository_creates_nothing(post_events, captured_world):
    assert post_events(envelope(PULL_BY_TAG)).status_code == 200
    assert not ContainerRepository.objects.exists()


def test_deletes_mark_the_registry_size_stale(post_events, captured_world):
    project = captured_world["project"]
    ProjectRegistryStatistics.objects.create(project=project, container_registry_size=5, stale=False)
    for name in ("0037-pull-manifest-docker-v2-by-tag.json", "0038-delete-manifest.json", "0039-delete-tag.json"):
        assert post_events(envelope(f"sequences/skopeo-delete/{name}")).status_code == 200
    assert ProjectRegistryStatistics.objects.get(project=project).stale


def test_mount_is_acknowledged_and_changes_nothing(post_events, captured_world):
    assert post_events(envelope("mount-blob.json")).status_code == 200
    assert not ContainerRepository.objects.exists()
    assert not RegistryEvent.objects.exists()


def test_cross_repository_copy_counts_a_push_in_the_target(post_events, captured_world):
    for name in sorted(p.name for p in (FIXTURES / "sequences/cross-repo-mount").iterdir()):
        assert post_events(envelope(f"sequences/cross-repo-mount/{name}")).status_code == 200
    assert ContainerRepository.objects.get(project=captured_world["other"], name="image").push_count == 1


# --- database outage ----------------------------------------------------------------------


def test_database_outage_is_503_and_the_retry_applies_the_event_once(post_events, captured_world):
    # A database that cannot be reached cannot be produced inside one test transaction;
    # here every attempt to use the connection fails as it would then. The real outage
    # (PostgreSQL stopped) is covered by the end-to-end tests.
    ContainerRepository.objects.create(project=captured_world["project"], name="image")
    unreachable = OperationalError("connection refused")
    with mock.patch("django.db.backends.base.base.BaseDatabaseWrapper.ensure_connection", side_effect=unreachable):
        response = post_events(envelope(PUSH_OCI))
    assert response.status_code == 503
    assert not RegistryEvent.objects.exists()
    assert post_events(envelope(PUSH_OCI)).status_code == 200
    assert post_events(envelope(PUSH_OCI)).status_code == 200
    assert image_repository(captured_world["project"]).push_count == 1


# --- cached creation times ----------------------------------------------------------------


def test_a_tag_push_drops_the_cached_creation_time_of_that_tag(post_events, captured_world):
    repository = ContainerRepository.objects.create(project=captured_world["project"], name="image")
    old_date = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    tag_cache.set_many(repository.pk, {"v1": old_date, "v2": old_date})

    assert post_events(envelope(PUSH_OCI)).status_code == 200  # v1 now names another image

    assert tag_cache.get_many(repository.pk, ["v1", "v2"]) == {"v2": old_date}


def test_our_dummy_push_keeps_the_cached_creation_time(post_events, captured_world):
    repository = ContainerRepository.objects.create(project=captured_world["project"], name="image")
    old_date = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    dummy = json.loads(envelope("push-manifest-docker-v2-dummy-for-tag-delete.json"))["events"][0]
    tag_cache.set_many(repository.pk, {dummy["target"]["tag"]: old_date})

    assert post_events(envelope("push-manifest-docker-v2-dummy-for-tag-delete.json")).status_code == 200

    assert tag_cache.get_many(repository.pk, [dummy["target"]["tag"]]) == {dummy["target"]["tag"]: old_date}


@pytest.mark.parametrize(
    ("dates_cached_for", "forgets"),
    [(dt.timedelta(hours=1), True), (dt.timedelta(seconds=-1), False)],
    ids=["dates-cached: forgets, and an unreachable cache does not fail it", "no-dates-cached: cache not asked"],
)
def test_a_push_forgets_its_cached_date_only_where_dates_are_cached_and_never_fails_on_the_cache(
    post_events, captured_world, settings, monkeypatch, dates_cached_for, forgets
):
    from tests_support.registry import free_port

    # A cleanup cached this repository's dates until then (or they have expired).
    ContainerRepository.objects.create(
        project=captured_world["project"], name="image", tag_dates_cached_until=timezone.now() + dates_cached_for
    )
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}",
        }
    }
    forgotten = []
    real_forget = tag_cache.forget
    monkeypatch.setattr(tag_cache, "forget", lambda *args: forgotten.append(args) or real_forget(*args))

    assert post_events(envelope(PUSH_OCI)).status_code == 200

    assert image_repository(captured_world["project"]).push_count == 1
    assert bool(forgotten) is forgets  # and the unreachable cache failed nothing


def test_the_wsgi_door_reads_a_body_sent_without_a_length_and_refuses_one_too_large(settings, captured_world):
    ContainerRepository.objects.create(project=captured_world["project"], name="image")
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    headers = {"CONTENT_TYPE": "application/json", "HTTP_AUTHORIZATION": SECRET, "wsgi.input_terminated": True}
    response = call_wsgi("POST", EVENTS_URL, envelope(PUSH_OCI), **headers, CONTENT_LENGTH="")
    assert response.status_code == 200
    assert image_repository(captured_world["project"]).push_count == 1

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = call_wsgi("POST", EVENTS_URL, envelope(PUSH_OCI), **headers, CONTENT_LENGTH="")
    assert response.status_code == 413
    assert response.json() == {"message": "413 Request Entity Too Large"}


def test_an_unparsable_length_is_an_empty_body_as_for_django(settings, captured_world):
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    response = call_wsgi(
        "POST",
        EVENTS_URL,
        envelope(PUSH_OCI),
        CONTENT_TYPE="application/json",
        HTTP_AUTHORIZATION=SECRET,
        CONTENT_LENGTH="many",
    )
    assert response.status_code == 400
    assert response.json() == {"message": "The request body is not valid JSON"}


@pytest.mark.django_db
def test_the_event_table_has_a_received_at_index_of_the_cheap_kind():
    from django.db import connection

    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, RegistryEvent._meta.db_table)
    assert constraints["cr_events_received_at"]["columns"] == ["received_at"]
    if connection.vendor != "postgresql":
        return  # a B-tree elsewhere (migration 0002)
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'container_registry_events'")
        indexes = dict(cursor.fetchall())
    assert "USING brin (received_at)" in indexes["cr_events_received_at"]
    assert not [name for name in indexes if name.endswith("_like")]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("event_id", "repository"),
    [
        ("ok-id", "acme/platform/svc/" + "a" * 300),  # longer than any repository name
        ("x" * 65, "acme/platform/svc/app"),  # longer than a registry's event id
        ("id\r\nX-Evil: 1", "acme/platform/svc/app"),  # could not travel as an Idempotency-Key
    ],
)
def test_events_with_an_id_or_path_no_registry_sends_are_skipped(client, settings, world, event_id, repository):
    from container_registry.models import ContainerRepository, RegistryEvent

    settings.REGISTRY_NOTIFICATION_SECRET = "s3cret"
    body = {
        "events": [
            {
                "id": event_id,
                "action": "push",
                "target": {
                    "repository": repository,
                    "tag": "v1",
                    "digest": "sha256:" + "1" * 64,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                },
            }
        ]
    }
    response = client.post(
        "/api/v4/container_registry_event/events",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION="s3cret",
    )
    assert response.status_code == 200
    assert not RegistryEvent.objects.exists() and not ContainerRepository.objects.exists()


def test_a_push_sent_again_after_its_repository_was_deleted_does_not_bring_it_back(post_events, captured_world):
    # The registry cannot be asked (post_events' registry is unreachable), so a push to
    # an image without a row is trusted: but this one was applied before.
    assert post_events(envelope(PUSH_OCI)).status_code == 200
    ContainerRepository.objects.filter(project=captured_world["project"], name="image").delete()

    assert post_events(envelope(PUSH_OCI)).status_code == 200

    assert not ContainerRepository.objects.filter(project=captured_world["project"], name="image").exists()
    assert RegistryEvent.objects.count() == 1
