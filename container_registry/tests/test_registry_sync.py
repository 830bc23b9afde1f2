"""``registry_sync`` against a small HTTP server that serves a paged catalog the way
distribution does (``?n=&last=``, a ``Link`` to the next page, its directory-walk order),
so that catalogs of any size and order can be made. The real registry and skopeo are in
test_registry_sync_e2e.py."""

from __future__ import annotations

import bisect
import json
import threading
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from container_registry.client import RegistryClient
from container_registry.maintenance import registry_sync
from container_registry.models import ContainerRepository
from container_registry.scheduling import mark_due_repositories
from projects.models import Project
from tests_support.factories import make_group, make_project

pytestmark = pytest.mark.django_db


def walk_order(path: str) -> list[str]:
    """distribution lists repositories as it walks its storage: directories in sorted
    order, a repository's own ``_manifests`` directory among its children."""
    return [*path.split("/"), "_manifests"]


class CatalogServer:
    """``GET /v2/_catalog`` over ``names``, in the registry's order, ``n`` per page."""

    def __init__(self, names, *, max_page: int = 1000, keep_order: bool = False):
        self.names = list(names) if keep_order else sorted(names, key=walk_order)
        self.keys = [walk_order(name) for name in self.names]
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                url = urlsplit(self.path)
                query = parse_qs(url.query)
                n = min(int(query.get("n", ["100"])[0]), max_page)
                last = query.get("last", [None])[0]
                start = 0 if last is None else bisect.bisect_right(outer.keys, walk_order(last))
                if keep_order and last is not None:
                    start = outer.names.index(last) + 1
                page = outer.names[start : start + n]
                body = json.dumps({"repositories": page}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if start + n < len(outer.names):
                    self.send_header("Link", f'</v2/_catalog?last={quote(page[-1], safe="")}&n={n}>; rel="next"')
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def client(self) -> RegistryClient:
        return RegistryClient(base_url=self.url, timeout=10)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def catalog():
    servers = []

    def start(names, **kwargs) -> CatalogServer:
        server = CatalogServer(names, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def projects(db):
    group = make_group("g")
    return {
        "p": make_project(group, "p"),
        "sub": make_project(make_group("p2", parent=group), "sub"),
        "nested": None,
    }


def paths() -> set[str]:
    return {repo.path for repo in ContainerRepository.objects.select_related("project")}


def collect():
    seen: dict[str, list[str]] = {}
    return seen, lambda kind, path: seen.setdefault(kind, []).append(path)


def test_rows_are_created_for_paths_of_projects_nested_names_included(catalog, projects):
    nested = make_project(Project.objects.get(full_path="g/p").namespace, "p-nested")
    server = catalog(["g/p", "g/p/app", "g/p/tools/cli", "g/p/a/b/c", "g/p2/sub/img", "g/p-nested/x", "nope/img"])
    seen, on_path = collect()
    report = registry_sync(client=server.client(), on_path=on_path)
    assert paths() == {"g/p", "g/p/app", "g/p/tools/cli", "g/p2/sub/img", "g/p-nested/x"}
    assert ContainerRepository.objects.get(project=projects["p"], name="tools/cli")
    assert ContainerRepository.objects.get(project=nested, name="x")
    # Three levels below a project is no image of it (GitLab's rule); "nope" is no project.
    assert seen["no_project"] == ["g/p/a/b/c", "nope/img"]
    assert (report.created, report.existing, report.unmatched, report.missing) == (5, 0, 2, 0)
    assert report.scanned == 7


def test_a_second_run_creates_nothing(catalog, projects):
    server = catalog(["g/p", "g/p/app"])
    registry_sync(client=server.client())
    ids = set(ContainerRepository.objects.values_list("id", flat=True))
    report = registry_sync(client=server.client())
    assert (report.created, report.existing) == (0, 2)
    assert set(ContainerRepository.objects.values_list("id", flat=True)) == ids


def test_dry_run_changes_nothing_and_reports_the_same(catalog, projects):
    server = catalog(["g/p", "g/p/app", "nope/x"])
    seen, on_path = collect()
    report = registry_sync(client=server.client(), dry_run=True, on_path=on_path)
    assert not ContainerRepository.objects.exists()
    assert sorted(seen["created"]) == ["g/p", "g/p/app"]
    assert (report.created, report.unmatched, report.dry_run) == (2, 1, True)


def test_rows_the_registry_no_longer_lists_are_reported_and_kept(catalog, projects):
    gone = ContainerRepository.objects.create(project=projects["p"], name="gone")
    kept = ContainerRepository.objects.create(project=projects["p"], name="app")
    last = ContainerRepository.objects.create(project=projects["sub"], name="zzz")
    server = catalog(["g/p/app", "g/p/other"])
    seen, on_path = collect()
    report = registry_sync(client=server.client(), on_path=on_path)
    assert seen["missing_from_registry"] == ["g/p/gone", "g/p2/sub/zzz"]
    assert report.missing == 2
    assert ContainerRepository.objects.filter(pk__in=[gone.pk, kept.pk, last.pk]).count() == 3


def test_the_merge_walk_follows_the_registrys_order_not_plain_string_order(catalog, projects):
    # "g/p/0a" comes before "g/p" in the registry (digits sort before "_manifests"), and
    # "g/p/a/b" before "g/p/a-c" ("/" before "-" component-wise): no row is "missing".
    names = ["g/p", "g/p/0a", "g/p/a", "g/p/a/b", "g/p/a-c", "g/p/a.d", "g/p2/sub", "g/p2/sub/9"]
    for name in names:
        registry_sync(client=catalog([name]).client())  # one row at a time
    assert len(paths()) == len(names)
    server = catalog(names)
    assert server.names[:2] == ["g/p/0a", "g/p"]
    report = registry_sync(client=server.client())
    assert (report.missing, report.missing_checked, report.existing) == (0, True, len(names))


def test_small_catalog_pages_are_followed(catalog, projects):
    server = catalog([f"g/p/img{i:03}" for i in range(25)], max_page=10)
    report = registry_sync(client=server.client())
    assert (report.pages, report.created) == (3, 25)


def test_one_project_only(catalog, projects):
    ContainerRepository.objects.create(project=projects["sub"], name="gone")
    server = catalog(["g/p/app", "g/p2/sub/img", "zz/unknown"])
    seen, on_path = collect()
    report = registry_sync(client=server.client(), project="g/p", on_path=on_path)
    assert paths() == {"g/p/app", "g/p2/sub/gone"}
    # Rows and paths of other projects are not its business.
    assert (report.created, report.unmatched, report.missing) == (1, 0, 0)
    by_id = registry_sync(client=server.client(), project=str(projects["sub"].pk))
    assert (by_id.created, by_id.missing) == (1, 1)
    with pytest.raises(ValueError):
        registry_sync(client=server.client(), project="no/such")


def test_projects_being_deleted_are_not_adopted(catalog, projects):
    Project.objects.filter(pk=projects["p"].pk).update(pending_delete=True)
    report = registry_sync(client=catalog(["g/p/app"]).client())
    assert not ContainerRepository.objects.exists()
    assert report.pending_delete == 1


def test_created_rows_are_new_repositories_for_cleanup_scheduling(catalog, projects, size_refreshes):
    policy = projects["p"].container_expiration_policy
    policy.enabled = True
    policy.save()
    type(policy).objects.filter(pk=policy.pk).update(next_run_at=timezone.now())
    registry_sync(client=catalog(["g/p/app"]).client())
    repository = ContainerRepository.objects.get(project=projects["p"], name="app")
    assert repository.expiration_policy_started_at is None
    assert mark_due_repositories(now=timezone.now()) == 1
    repository.refresh_from_db()
    assert repository.expiration_policy_cleanup_status == "cleanup_scheduled"
    # The project's size now counts the adopted images.
    assert [project_id for project_id, _countdown in size_refreshes] == [projects["p"].pk]


def test_a_catalog_out_of_order_still_adopts_but_reports_no_missing_rows(catalog, projects):
    ContainerRepository.objects.create(project=projects["p"], name="gone")
    server = catalog(["g/p/b", "g/p/a"], keep_order=True)
    report = registry_sync(client=server.client())
    assert paths() == {"g/p/a", "g/p/b", "g/p/gone"}
    assert (report.missing_checked, report.missing) == (False, 0)


def test_the_command_prints_paths_on_stdout_and_a_summary_on_stderr(catalog, projects, settings):
    ContainerRepository.objects.create(project=projects["p"], name="gone")
    settings.REGISTRY_API_URL = catalog(["g/p/app", "nope/x"]).url
    out, err = StringIO(), StringIO()
    call_command("registry_sync", "--dry-run", stdout=out, stderr=err)
    lines = sorted(out.getvalue().splitlines())
    assert lines == ["no project\tnope/x", "not in registry\tg/p/gone", "to create\tg/p/app"]
    assert "Dry run: 2 catalog paths in 1 pages: 1 repositories to create" in err.getvalue()
    assert "1 rows not in the registry" in err.getvalue()
    assert paths() == {"g/p/gone"}
    call_command("registry_sync", "--project", "g/p", stdout=out, stderr=err)
    assert paths() == {"g/p/gone", "g/p/app"}


def test_the_command_fails_when_the_registry_does(projects, unreachable_registry):
    with pytest.raises(CommandError, match="container registry failed"):
        call_command("registry_sync", stdout=StringIO(), stderr=StringIO())


def test_the_command_fails_for_an_unknown_project(catalog, projects, settings):
    settings.REGISTRY_API_URL = catalog([]).url
    with pytest.raises(CommandError, match="not found"):
        call_command("registry_sync", "--project", "no/such", stdout=StringIO(), stderr=StringIO())


# --- a big catalog in bounded memory ---------------------------------------------------------

BIG = 100_000


def test_a_catalog_of_100000_repositories_in_bounded_memory(catalog, projects):
    """10,000 images of 20 projects to adopt, 90,000 paths of no project, 100 rows the
    registry lost. Peak memory is measured with tracemalloc against what holding the
    catalog's names alone takes."""
    group = projects["p"].namespace
    owners = [make_project(group, f"big{i:02}") for i in range(20)]
    names = [f"g/big{i:02}/img{j:04}" for i in range(20) for j in range(500)]
    names += [f"other/ns{k:05}/img" for k in range(BIG - len(names))]
    for k in range(100):
        ContainerRepository.objects.create(project=owners[k % 20], name=f"lost{k:03}")
    server = catalog(names)
    client = server.client()
    del names
    # Warm up: first-use costs (imports of the cache's client, compiled statements, the
    # connection) are not the sync's; they were most of the peak on PostgreSQL and Redis.
    registry_sync(client=catalog(["g/p/warm-up", "other/x"]).client())
    ContainerRepository.objects.filter(project=projects["p"]).delete()

    tracemalloc.start()
    try:
        held = [f"other/ns{k:05}/img" for k in range(BIG)]  # the catalog held whole
        catalog_bytes = tracemalloc.get_traced_memory()[0]
        del held
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        counts = {"missing_from_registry": 0, "no_project": 0, "created": 0}
        report = registry_sync(client=client, on_path=lambda kind, path: counts.__setitem__(kind, counts[kind] + 1))
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()

    # 100 full pages; the last has no Link, so the client asks once more (an empty page).
    assert (report.scanned, report.pages) == (BIG, 101)
    assert (report.created, report.unmatched, report.missing, report.missing_checked) == (10_000, 90_000, 100, True)
    assert counts == {"missing_from_registry": 100, "no_project": 90_000, "created": 10_000}
    assert ContainerRepository.objects.count() == 10_100
    # Measured: about 1.3 MB on SQLite and 2.2 MB on PostgreSQL (a page of inserts in
    # flight), against 7.4 MB for the names alone: the catalog is never held whole.
    assert peak < catalog_bytes / 2, (peak, catalog_bytes)
