"""End to end against the real registry: skopeo pushes, the registry notifies our
receiver, python-gitlab drives the API, and sizes are checked against the registry's own
data directory."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import gitlab
import pytest
import requests

from container_registry.cleanup import plan_cleanup
from container_registry.cleanup_rules import CleanupRules
from container_registry.client import ACCEPT_MANIFESTS, RegistryClient, get_client
from container_registry.maintenance.usage import registry_usage
from container_registry.models import ContainerRepository, ProjectRegistryStatistics, RegistryEvent
from projects.models import AccessLevel, GroupMember
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import build_image, skopeo, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "password123"
CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def stored_bytes(data_dir: Path, paths: list[str]) -> int:
    """Bytes on disk of every blob the tags of ``paths`` reach, each digest once, read
    from the registry's storage without going through its API."""
    root = data_dir / "docker" / "registry" / "v2"

    def blob(digest: str) -> Path:
        hexdigest = digest.split(":", 1)[1]
        return root / "blobs" / "sha256" / hexdigest[:2] / hexdigest / "data"

    seen: set[str] = set()

    def walk(digest: str) -> None:
        if digest in seen:
            return
        seen.add(digest)
        manifest = json.loads(blob(digest).read_bytes())
        for child in manifest.get("manifests", []):
            walk(child["digest"])
        for descriptor in [manifest.get("config"), *manifest.get("layers", [])]:
            if descriptor:
                seen.add(descriptor["digest"])

    for path in paths:
        tags_dir = root / "repositories" / path / "_manifests" / "tags"
        for tag_dir in tags_dir.iterdir() if tags_dir.is_dir() else []:
            link = tag_dir / "current" / "link"
            if link.is_file():
                walk(link.read_text())
    return sum(blob(digest).stat().st_size for digest in seen)


def digest_of(registry, path: str, tag: str, creds: str) -> str:
    return json.loads(skopeo("inspect", registry.ref(path, tag), creds=creds).stdout)["Digest"]


@pytest.fixture
def pushed(registry, live_server, tmp_path, gitlab_client):
    """Two projects with images in nested paths, pushed by skopeo through our realm."""
    owner = make_user("owner", password=PASSWORD)
    reporter = make_user("reporter", password=PASSWORD)
    acme = make_group("acme", owner=owner)
    GroupMember.objects.create(group=acme, user=reporter, access_level=AccessLevel.REPORTER)
    alpha = make_project(acme, "alpha", creator=owner)
    beta = make_project(acme, "beta", creator=owner)
    creds = f"owner:{PASSWORD}"
    layout = tmp_path / "layout"
    shared = build_image(layout, size=200_000, seed="shared", created=CREATED, tag="shared")
    other = build_image(layout, size=50_000, seed="other", tag="other")
    for tag in ("v1", "latest", "gone"):
        skopeo("copy", shared, registry.ref("acme/alpha/app", tag), creds=creds)
    skopeo("copy", other, registry.ref("acme/alpha/tools/cli", "1.0"), creds=creds)
    # The same layer again in another repository of the project: stored (and counted) once.
    skopeo("copy", shared, registry.ref("acme/alpha/tools/cli", "base"), creds=creds)
    skopeo("copy", other, registry.ref("acme/beta", "stable"), creds=creds)
    wait_until(
        lambda: (
            ContainerRepository.objects.filter(push_count__gt=0).count() == 3
            and ContainerRepository.objects.get(project=alpha, name="app").push_count == 3
        ),
        message="push events",
    )
    gl = gitlab_client(live_server.url, make_token(owner))
    return {
        "owner": owner,
        "reporter": reporter,
        "acme": acme,
        "alpha": alpha,
        "beta": beta,
        "creds": creds,
        "gl": gl,
    }


def test_notifications_create_and_count_repositories(pushed):
    rows = {r.path: r for r in ContainerRepository.objects.select_related("project")}
    assert set(rows) == {"acme/alpha/app", "acme/alpha/tools/cli", "acme/beta"}
    assert rows["acme/alpha/app"].push_count == 3
    assert rows["acme/alpha/tools/cli"].push_count == 2
    assert rows["acme/beta"].name == ""
    assert all(r.last_pushed_at is not None for r in rows.values())
    assert ProjectRegistryStatistics.objects.get(project=pushed["alpha"]).stale


def test_python_gitlab_lists_repositories_and_tags_with_digests_sizes_and_dates(pushed, registry):
    project = pushed["gl"].projects.get("acme/alpha")
    repositories = project.repositories.list(tags=True, tags_count=True)
    by_path = {r.path: r for r in repositories}
    assert set(by_path) == {"acme/alpha/app", "acme/alpha/tools/cli"}
    app = by_path["acme/alpha/app"]
    assert app.attributes["tags_count"] == 3
    assert [t["name"] for t in app.attributes["tags"]] == ["gone", "latest", "v1"]
    assert app.location == f"{registry.host_port}/acme/alpha/app"
    assert app.delete_api_path.endswith(f"/projects/{pushed['alpha'].pk}/registry/repositories/{app.id}")

    assert [t.name for t in app.tags.list(get_all=True)] == ["gone", "latest", "v1"]
    tag = app.tags.get("v1")
    assert tag.digest == digest_of(registry, "acme/alpha/app", "v1", pushed["creds"])
    assert tag.created_at == "2024-01-02T03:04:05.000Z"
    assert tag.location == f"{registry.host_port}/acme/alpha/app:v1"
    raw = json.loads(skopeo("inspect", "--raw", registry.ref("acme/alpha/app", "v1"), creds=pushed["creds"]).stdout)
    # GitLab's total_size: the sum of the image's layers.
    assert tag.total_size == sum(layer["size"] for layer in raw["layers"]) > 0
    assert tag.revision == raw["config"]["digest"].split(":")[1]
    assert tag.short_revision == tag.revision[:9]

    with pytest.raises(gitlab.GitlabGetError) as missing:
        app.tags.get("nope")
    assert missing.value.response_code == 404

    single = pushed["gl"].registry_repositories.get(app.id, tags=True, tags_count=True, size=True)
    assert single.size == stored_bytes(registry.data_dir, ["acme/alpha/app"])
    assert single.tags_count == 3

    group_repos = pushed["gl"].groups.get("acme").registry_repositories.list(get_all=True)
    assert sorted(r.path for r in group_repos) == ["acme/alpha/app", "acme/alpha/tools/cli", "acme/beta"]


def test_deleting_a_tag_keeps_the_tags_that_share_its_digest(pushed, registry):
    project = pushed["gl"].projects.get(pushed["alpha"].pk)
    app = next(r for r in project.repositories.list() if r.name == "app")
    v1_digest = digest_of(registry, "acme/alpha/app", "v1", pushed["creds"])

    app.tags.delete("gone")

    listed = json.loads(
        skopeo("list-tags", f"docker://{registry.host_port}/acme/alpha/app", creds=pushed["creds"]).stdout
    )
    assert sorted(listed["Tags"]) == ["latest", "v1"]
    assert digest_of(registry, "acme/alpha/app", "v1", pushed["creds"]) == v1_digest
    assert digest_of(registry, "acme/alpha/app", "latest", pushed["creds"]) == v1_digest
    with pytest.raises(gitlab.GitlabDeleteError) as again:
        app.tags.delete("gone")
    assert again.value.response_code == 404
    # Our dummy manifest push was not counted as a push of the user's.
    time.sleep(1)
    assert ContainerRepository.objects.get(pk=app.id).push_count == 3
    # The owner reads the deletion (once: the second one found no tag) in the project's audit events.
    deleted = [
        e for e in project.audit_events.list(get_all=True) if e.event_name == "container_repository_tags_deleted"
    ]
    assert [(e.author_id, e.details["custom_message"], e.details["target_id"]) for e in deleted] == [
        (pushed["owner"].pk, "Deleted tag gone", app.id)
    ]


def test_reporter_cannot_delete_tags_or_repositories(pushed, live_server, gitlab_client):
    gl = gitlab_client(live_server.url, make_token(pushed["reporter"]))
    app = next(r for r in gl.projects.get("acme/alpha").repositories.list() if r.name == "app")
    assert "delete_api_path" not in app.attributes
    with pytest.raises(gitlab.GitlabDeleteError) as tag_error:
        app.tags.delete("v1")
    assert tag_error.value.response_code == 403
    with pytest.raises(gitlab.GitlabDeleteError) as repo_error:
        app.delete()
    assert repo_error.value.response_code == 403


def test_deleting_a_repository_schedules_it(pushed):
    project = pushed["gl"].projects.get("acme/beta")
    (root,) = project.repositories.list()
    root.delete()
    assert ContainerRepository.objects.get(pk=root.id).status == "delete_scheduled"
    assert project.repositories.list()[0].status == "delete_scheduled"


def test_registry_usage_reports_the_bytes_in_the_data_directory(pushed, registry):
    rows = {row.project_path: row for row in registry_usage()}
    alpha = stored_bytes(registry.data_dir, ["acme/alpha/app", "acme/alpha/tools/cli"])
    beta = stored_bytes(registry.data_dir, ["acme/beta"])
    assert rows["acme/alpha"].registry_size_bytes == alpha
    assert rows["acme/beta"].registry_size_bytes == beta
    assert rows["acme/alpha"].creator_id == pushed["owner"].pk
    # The shared layer is stored once, so the project is smaller than its tags summed.
    app_size = stored_bytes(registry.data_dir, ["acme/alpha/app"])
    cli_size = stored_bytes(registry.data_dir, ["acme/alpha/tools/cli"])
    assert alpha < app_size + cli_size
    assert list(rows) == sorted(rows, key=lambda p: -rows[p].registry_size_bytes)
    stats = ProjectRegistryStatistics.objects.get(project=pushed["alpha"])
    assert (stats.container_registry_size, stats.stale) == (alpha, False)


def test_registry_usage_command_prints_csv(pushed, registry):
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    call_command("registry_usage", "--format", "csv", "--limit", "1", stdout=out, stderr=err)
    lines = out.getvalue().splitlines()
    assert lines[0] == "project_id,creator_id,registry_size_bytes,project_path"
    assert len(lines) == 2
    expected = stored_bytes(registry.data_dir, ["acme/alpha/app", "acme/alpha/tools/cli"])
    assert lines[1] == f"{pushed['alpha'].pk},{pushed['owner'].pk},{expected},acme/alpha"
    assert "1 projects" in err.getvalue()


def test_our_own_reads_are_not_counted_as_pulls_and_a_users_pull_is(pushed, registry, tmp_path):
    path = "acme/alpha/app"
    app = ContainerRepository.objects.get(project=pushed["alpha"], name="app")

    def pulls() -> int:
        return ContainerRepository.objects.get(pk=app.pk).pull_count

    def user_pull(target: str) -> None:
        skopeo("copy", registry.ref(path, "v1"), f"oci:{tmp_path / target}:v1", creds=pushed["creds"])

    user_pull("first")
    wait_until(lambda: pulls() > 0, message="the pull event of a user's pull")
    one_pull = pulls()

    # Our own registry reads: a cleanup dry run (every tag's manifest and config) and
    # the tag details the API shows.
    client = RegistryClient(base_url=registry.url, timeout=10)
    plan = plan_cleanup(repository=app, rules=CleanupRules(name_regex_delete=".*", keep_n=1), client=client)
    assert [d.created_at for d in plan.decisions if d.name == "v1"] == [CREATED]
    assert client.tag_details(path, "gone") is not None
    # Notifications arrive in order: once the next user's pull is counted, every event of
    # our reads has been received too.
    user_pull("second")
    wait_until(lambda: pulls() >= 2 * one_pull, message="the pull event of the second user's pull")
    time.sleep(0.5)

    assert pulls() == 2 * one_pull
    assert ContainerRepository.objects.get(pk=app.pk).last_pulled_at is not None


def test_duplicated_and_reordered_envelopes_change_nothing(pushed, live_server, settings):
    before = {r.pk: (r.push_count, r.pull_count, r.last_pushed_at) for r in ContainerRepository.objects.all()}
    recorded = list(RegistryEvent.objects.order_by("-received_at"))
    assert recorded
    for event in recorded:  # newest first: the reverse of delivery order
        body = {
            "events": [
                {
                    "id": event.event_id,
                    "timestamp": "2001-01-01T00:00:00Z",
                    "action": event.action,
                    "target": {
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": event.digest,
                        "repository": event.repository,
                        "tag": event.tag,
                    },
                    "request": {"method": "GET"},
                }
            ]
        }
        response = requests.post(
            f"{live_server.url}/api/v4/container_registry_event/events",
            data=json.dumps(body),
            headers={
                "Authorization": settings.REGISTRY_NOTIFICATION_SECRET,
                "Content-Type": "application/vnd.docker.distribution.events.v1+json",
            },
            timeout=5,
        )
        assert response.status_code == 200
    after = {r.pk: (r.push_count, r.pull_count, r.last_pushed_at) for r in ContainerRepository.objects.all()}
    assert after == before


def test_a_late_push_event_does_not_revive_a_deleted_repository(pushed, registry, live_server, settings):
    app = ContainerRepository.objects.get(project=pushed["alpha"], name="app")
    event = RegistryEvent.objects.filter(repository="acme/alpha/app", action="push").first()
    get_client().delete_tags("acme/alpha/app", ["v1", "latest", "gone"])
    app.delete()
    body = {
        "events": [
            {
                "id": "late-" + event.event_id,
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": event.digest,
                    "repository": "acme/alpha/app",
                    "tag": event.tag,
                },
            }
        ]
    }
    response = requests.post(
        f"{live_server.url}/api/v4/container_registry_event/events",
        json=body,
        headers={"Authorization": settings.REGISTRY_NOTIFICATION_SECRET},
        timeout=5,
    )
    assert response.status_code == 200
    assert not ContainerRepository.objects.filter(project=pushed["alpha"], name="app").exists()


def test_registry_identity_is_recorded(registry):
    from io import StringIO

    from django.core.management import call_command

    from container_registry.services import record_registry_identity

    app_settings = record_registry_identity()
    # As GitLab: only its own registry announces a version; any other is vendor "other".
    assert app_settings.container_registry_vendor == "other"
    assert app_settings.container_registry_version == ""
    out = StringIO()
    call_command("registry_identity", stdout=out)
    assert "registry vendor: other" in out.getvalue()


@contextmanager
def database_outage():
    """Make the database unreachable for every new connection, for real: PostgreSQL
    refuses connections to the test database (and drops the open ones); the SQLite file
    is moved away, so a new connection finds an empty database without our tables."""
    from django.db import connection

    if connection.vendor == "postgresql":
        name = connection.settings_dict["NAME"]
        # PostgreSQL refuses to disallow connections to the database a session is in, so
        # the switch goes through the maintenance database ("postgres").
        connection.close()
        with connection._nodb_cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
        try:
            yield
        finally:
            with connection._nodb_cursor() as cursor:
                cursor.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            connection.close()
        return
    if connection.vendor != "sqlite":
        pytest.skip(f"no outage recipe for {connection.vendor}")
    database = Path(connection.settings_dict["NAME"])
    connection.close()
    files = [Path(f"{database}{suffix}") for suffix in ("", "-wal", "-shm")]
    moved = [f for f in files if f.exists()]
    for f in moved:
        f.rename(f.with_name(f.name + ".away"))
    try:
        yield
    finally:
        for f in files:
            f.unlink(missing_ok=True)  # the empty database new connections created
        for f in moved:
            f.with_name(f.name + ".away").rename(f)


def test_database_outage_answers_503_and_every_event_is_applied_once_after(
    pushed, registry, live_server, settings, tmp_path
):
    from jwt_auth.tokens import mint_registry_token

    app = ContainerRepository.objects.get(project=pushed["alpha"], name="app")
    # A user's pulls (our own client's reads are not counted), with a token minted now:
    # no database is needed later.
    pull_token, _ = mint_registry_token(
        access=[{"type": "repository", "name": "acme/alpha/app", "actions": ["pull"]}], subject="owner", lifetime=600
    )

    def user_pull() -> None:
        requests.get(
            f"{registry.url}/v2/acme/alpha/app/manifests/v1",
            headers={"Authorization": f"Bearer {pull_token}", "Accept": ACCEPT_MANIFESTS},
            timeout=5,
        ).raise_for_status()

    user_pull()
    wait_until(lambda: ContainerRepository.objects.get(pk=app.pk).pull_count == 1, message="first pull")
    push_token, _ = mint_registry_token(
        access=[{"type": "repository", "name": "acme/alpha/outage", "actions": ["pull", "push"]}], lifetime=600
    )
    image = build_image(tmp_path / "outage", size=10_000, seed="outage", tag="v1")
    envelope = (Path(__file__).parent / "fixtures" / "registry-2.8" / "push-manifest-oci.json").read_bytes()

    with database_outage():
        refused = requests.post(
            f"{live_server.url}/api/v4/container_registry_event/events",
            data=envelope,
            headers={
                "Authorization": settings.REGISTRY_NOTIFICATION_SECRET,
                "Content-Type": "application/vnd.docker.distribution.events.v1+json",
            },
            timeout=5,
        )
        for _ in range(3):
            user_pull()
        skopeo("copy", f"--dest-registry-token={push_token}", image, registry.ref("acme/alpha/outage", "v1"))
        time.sleep(2)  # the registry keeps failing and retrying meanwhile

    assert refused.status_code == 503
    outage_repo = wait_until(
        lambda: ContainerRepository.objects.filter(project=pushed["alpha"], name="outage", push_count__gt=0).first(),
        message="events queued during the outage",
    )
    wait_until(lambda: ContainerRepository.objects.get(pk=app.pk).pull_count >= 4, message="queued pulls")
    time.sleep(2)  # anything applied twice would show up by now
    assert ContainerRepository.objects.get(pk=app.pk).pull_count == 4
    assert ContainerRepository.objects.get(pk=outage_repo.pk).push_count == 1


def test_a_request_reads_a_bounded_number_of_tags(pushed, live_server, monkeypatch):
    """Tag names a request reads from the registry are counted over all the repositories
    it lists; past the bound the answer is GitLab's 400, not a list held in memory."""
    from container_registry import api

    monkeypatch.setattr(api, "MAX_TAGS_PER_REQUEST", 4)
    headers = {"PRIVATE-TOKEN": make_token(pushed["owner"])}
    base = f"{live_server.url}/api/v4/projects/{pushed['alpha'].pk}/registry/repositories"
    # app (3 tags) and tools/cli (2 tags) on one page: 5 names to read.
    response = requests.get(base, params={"tags": "true"}, headers=headers, timeout=30)
    assert response.status_code == 400
    assert response.json()["message"].startswith("400 Bad request - more than 4 tags to list in one request")
    # One repository per page stays within the bound.
    response = requests.get(base, params={"tags": "true", "per_page": 1}, headers=headers, timeout=30)
    assert response.status_code == 200
    assert [t["name"] for t in response.json()[0]["tags"]] == ["gone", "latest", "v1"]
    app = ContainerRepository.objects.get(project=pushed["alpha"], name="app")
    monkeypatch.setattr(api, "MAX_TAGS_PER_REQUEST", 2)
    response = requests.get(f"{base}/{app.pk}/tags", headers=headers, timeout=30)
    assert response.status_code == 400
    monkeypatch.setattr(api, "MAX_TAGS_PER_REQUEST", 3)
    response = requests.get(f"{base}/{app.pk}/tags", params={"per_page": 1000}, headers=headers, timeout=30)
    assert response.status_code == 200
    assert (response.headers["X-Per-Page"], response.headers["X-Total"]) == ("100", "3")
    # A cleanup plan reads tag lists too: the same bound over all the project's repositories.
    project_plan = f"{live_server.url}/api/v4/projects/{pushed['alpha'].pk}/registry/cleanup_plan"
    monkeypatch.setattr(api, "MAX_TAGS_PER_REQUEST", 4)
    response = requests.get(project_plan, params={"name_regex_delete": ".*"}, headers=headers, timeout=30)
    assert response.status_code == 400
    assert response.json()["message"].startswith("400 Bad request - more than 4 tags to list in one request")
    monkeypatch.setattr(api, "MAX_TAGS_PER_REQUEST", 5)
    response = requests.get(project_plan, params={"name_regex_delete": ".*"}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
