"""Benchmark of a cleanup-policy run against the real registry (distribution 2.8).

    .venv/bin/python bench/cleanup/run.py [--tags 2000] [--rounds 3] [--bare-readers 1]
        [--registry-dir /dev/shm] [--profile] [--database-url postgres://...]

Starts ``docker-registry`` with token auth trusting a freshly generated signing key (the
service mints its own tokens with that key, so no web realm is running; the configured
realm URL is never called), migrates a throwaway database (SQLite in a temporary
VAR_DIR unless ``--database-url`` is given; use a throwaway database there too), and
fills one repository with ``--tags`` tags over plain HTTP: a few images with distinct
config ``created`` times are uploaded once, then their manifests are PUT under many tag
names.

Each round then measures, on an identically refilled repository:

* **ours**: ``run_policy_cleanup`` (what the Celery task calls) on the repository, with
  ``max_list_size=0`` and ``timeout=0`` so that one run cleans everything, an empty
  creation-time cache, and a fresh registry client counting its requests;
* **bare**: a sequential loop over one ``requests`` session and one token issuing the
  minimum requests for the same decisions and deletions (see ``bare_cleanup``).

It prints tags deleted per second, registry requests per deleted tag, where the time
went, the ratio ours/bare (goal >= 0.8), and checks that both left exactly the tags the
policy keeps. Not run by CI or the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import io
import json
import os
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GROUP, PROJECT, IMAGE = "bench", "app", "image"
REPOSITORY_PATH = f"{GROUP}/{PROJECT}/{IMAGE}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
ACCEPT = ", ".join(
    (
        OCI_MANIFEST,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )
)
# The policy under test: everything is a candidate except release-*, keep the 10 newest,
# delete the rest that are older than 30 days ("latest" is never deleted).
POLICY = {"name_regex": ".*", "name_regex_keep": "release-.*", "keep_n": 10, "older_than": "30d"}
# Image ages in days: three old images (deleted by older_than) and one recent (kept).
OLD_AGES = (200, 120, 60)
RECENT_AGE = 2
RECENT_SHARE = 10  # every 10th build tag points at the recent image
RELEASE_TAGS = 10
FILL_THREADS = 4


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cleanup-"))
    try:
        return run(args, work)
    finally:
        if args.keep_work:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=2000, help="tags in the repository (default 2000)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="measured rounds of ours + bare (default 3, 1 above 5,000 tags)"
    )
    parser.add_argument("--database-url", default=None, help="a throwaway database (default: temporary SQLite)")
    parser.add_argument(
        "--bare-readers", type=int, default=1, help="threads the bare loop reads manifests with (default 1)"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile our run and print the top functions")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary directory (registry log)")
    parser.add_argument(
        "--registry-dir",
        type=Path,
        default=None,
        help="parent directory of the registry's storage (default: the temporary directory; /dev/shm takes the "
        "disk out of the measurement)",
    )
    args = parser.parse_args()
    if args.tags < 100:
        parser.error("--tags must be at least 100")
    if args.rounds is None:
        # The machine may be shared and disk writes vary: medians of a few rounds are steadier.
        args.rounds = 3 if args.tags <= 5000 else 1
    return args


def setup_django(work: Path, database_url: str | None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "gitlab_core.settings"
    os.environ["VAR_DIR"] = str(work / "var")
    os.environ["REGISTRY_KEY_PATH"] = str(work / "keys" / "registry.key")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def run(args: argparse.Namespace, work: Path) -> int:
    setup_django(work, args.database_url)
    from django.conf import settings

    from tests_support.registry import create_registry, generate_key_pair, missing_tools

    if missing_tools():
        print(f"missing: {', '.join(missing_tools())} (apt-get install docker-registry skopeo umoci)")
        return 2
    key_path = Path(settings.REGISTRY_KEY_PATH)
    key_path.parent.mkdir(parents=True)
    generate_key_pair(key_path=key_path, cert_path=key_path.with_suffix(".crt"))
    registry_dir = None
    if args.registry_dir:
        registry_dir = Path(tempfile.mkdtemp(prefix="bench-registry-", dir=args.registry_dir))
    registry = create_registry(
        work_dir=registry_dir or work / "registry",
        # Never called: every client here mints its tokens with the signing key.
        realm="http://127.0.0.1:9/jwt/auth",
        issuer=settings.REGISTRY_ISSUER,
        cert_bundle=key_path.with_suffix(".crt"),
        notification_url=None,
        notification_secret="",
    )
    settings.REGISTRY_API_URL = registry.url
    settings.REGISTRY_HOST_PORT = registry.host_port
    registry.start()
    try:
        return measure(args, work, registry.url, registry.data_dir)
    finally:
        registry.stop()
        if registry_dir is not None and not args.keep_work:
            shutil.rmtree(registry_dir, ignore_errors=True)


# --- filling the repository ------------------------------------------------------------------


@dataclass
class Fill:
    """The images uploaded once, and which tag points at which image."""

    manifests: dict[str, bytes] = field(default_factory=dict)  # image key -> manifest body
    tags: dict[str, str] = field(default_factory=dict)  # tag -> image key
    expected_kept: set[str] = field(default_factory=set)

    @property
    def expected_deleted(self) -> int:
        return len(self.tags) - len(self.expected_kept)


def token(access_actions: list[str]) -> str:
    from jwt_auth.tokens import mint_registry_token

    access = [{"type": "repository", "name": REPOSITORY_PATH, "actions": access_actions}]
    return mint_registry_token(access=access, lifetime=3600)[0]


def session_for(actions: list[str], pool: int = 1) -> requests.Session:
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=pool)
    session.mount("http://", adapter)
    session.headers["Authorization"] = f"Bearer {token(actions)}"
    return session


def upload_blob(session: requests.Session, base: str, body: bytes, media_type: str = "application/octet-stream") -> str:
    """Monolithic upload (POST + PUT) of one blob; returns its digest."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    started = session.post(f"{base}/v2/{REPOSITORY_PATH}/blobs/uploads/")
    started.raise_for_status()
    location = urljoin(base + "/", started.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = session.put(f"{location}{separator}digest={digest}", data=body, headers={"Content-Type": media_type})
    done.raise_for_status()
    return digest


def build_images(work: Path, base: str) -> dict[str, tuple[bytes, int]]:
    """Build the images offline with umoci (the test harness's ``build_image``) and upload
    their blobs once. Returns image key -> (manifest body, age in days)."""
    from tests_support.registry import build_image

    layout = work / "layout"
    session = session_for(["pull", "push"])
    now = dt.datetime.now(dt.UTC)
    images: dict[str, tuple[bytes, int]] = {}
    for age in (*OLD_AGES, RECENT_AGE):
        key = f"age{age}"
        build_image(layout, size=512, created=now - dt.timedelta(days=age), seed=key, tag=key)
        index = json.loads((layout / "index.json").read_text())
        entry = next(m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == key)
        manifest_body = _layout_blob(layout, entry["digest"])
        manifest = json.loads(manifest_body)
        for descriptor in [manifest["config"], *manifest["layers"]]:
            upload_blob(session, base, _layout_blob(layout, descriptor["digest"]))
        images[key] = (manifest_body, age)
    return images


def _layout_blob(layout: Path, digest: str) -> bytes:
    algorithm, hexdigest = digest.split(":", 1)
    return (layout / "blobs" / algorithm / hexdigest).read_bytes()


def plan_fill(images: dict[str, tuple[bytes, int]], count: int) -> Fill:
    """``latest`` and the release tags, then build tags: most on old images, every
    RECENT_SHARE-th on the recent one. What the policy keeps is computed here, by hand."""
    fill = Fill(manifests={key: body for key, (body, _age) in images.items()})
    old_keys = [f"age{age}" for age in OLD_AGES]
    recent_key = f"age{RECENT_AGE}"
    fill.tags["latest"] = recent_key
    for i in range(RELEASE_TAGS):
        fill.tags[f"release-{i}"] = old_keys[i % len(old_keys)]
    for i in range(count - len(fill.tags)):
        fill.tags[f"build-{i:05d}"] = recent_key if i % RECENT_SHARE == 0 else old_keys[i % len(old_keys)]
    # Kept: latest, release-*, and every tag on the recent image (younger than 30 days;
    # the 10 newest candidates are among them, since they outnumber keep_n).
    fill.expected_kept = {t for t, key in fill.tags.items() if key == recent_key or not t.startswith("build-")}
    assert sum(1 for key in fill.tags.values() if key == recent_key) > POLICY["keep_n"]
    return fill


def fill_repository(base: str, fill: Fill) -> float:
    """PUT every tag's manifest (only missing ones, so refilling restores the deleted)."""
    present = set(list_tags(base))
    missing = [t for t in fill.tags if t not in present]
    session = session_for(["pull", "push"], pool=FILL_THREADS)
    started = time.perf_counter()

    def put(tag: str) -> None:
        response = session.put(
            f"{base}/v2/{REPOSITORY_PATH}/manifests/{tag}",
            data=fill.manifests[fill.tags[tag]],
            headers={"Content-Type": OCI_MANIFEST},
        )
        response.raise_for_status()

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        list(pool.map(put, missing))
    elapsed = time.perf_counter() - started
    assert set(list_tags(base)) == set(fill.tags), "the repository was not filled as planned"
    return elapsed


def list_tags(base: str) -> list[str]:
    session = session_for(["pull"])
    response = session.get(f"{base}/v2/{REPOSITORY_PATH}/tags/list")
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return response.json().get("tags") or []


# --- the two contenders ---------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    seconds: float
    deleted: int
    requests: int
    phases: dict[str, float] = field(default_factory=dict)
    # The 1-minute load average right after the run: the machine may be shared.
    load: float = 0.0

    @property
    def rate(self) -> float:
        return self.deleted / self.seconds

    @property
    def requests_per_tag(self) -> float:
        return self.requests / self.deleted


class Phases:
    """Wall time spent inside named calls (only the outermost call of a thread counts)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return timed


def ours(base: str, profile: bool) -> Measurement:
    """One policy run, through the service the Celery task calls."""
    from django.core.cache import cache

    from container_registry import cleanup
    from container_registry.client import RegistryClient
    from container_registry.models import ContainerRepository
    from container_registry.scheduling import run_policy_cleanup

    cache.clear()
    repository = ContainerRepository.objects.get(project__full_path_lower=f"{GROUP}/{PROJECT}", name=IMAGE)
    ContainerRepository.objects.filter(pk=repository.pk).update(
        expiration_policy_cleanup_status=ContainerRepository.CleanupStatus.SCHEDULED
    )
    from django.conf import settings

    from tests_support.registry import RequestCounter

    client = RegistryClient(base_url=base, timeout=settings.REGISTRY_REQUEST_TIMEOUT)
    requests_sent = RequestCounter(client)
    phases = Phases()
    client.list_tags = phases.wrap("list tags", client.list_tags)
    client.delete_tags = phases.wrap("delete (dummy recipe)", client.delete_tags)
    client.delete_manifest = phases.wrap("of which DELETE by digest", client.delete_manifest)
    original_reader = cleanup.read_created_at
    cleanup.read_created_at = phases.wrap("read creation times", original_reader)
    profiler = cProfile.Profile() if profile else None
    try:
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        outcome = run_policy_cleanup(repository_id=repository.pk, client=client)
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        cleanup.read_created_at = original_reader
    result = outcome.cleanup
    assert outcome.result == "finished" and result is not None, f"the run ended {outcome.result}: {outcome.error}"
    outer = sum(v for k, v in phases.seconds.items() if not k.startswith("of which"))
    phases.seconds["database and decisions"] = seconds - outer
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
    return Measurement("ours", seconds, result.deleted_size, requests_sent.count, phases.seconds)


def bare_cleanup(base: str, *, now: dt.datetime, readers: int = 1) -> Measurement:
    """The minimum for the same policy, in one loop over one connection:

    1. ``GET tags/list`` (one request; distribution 2.8 returns every tag at once);
    2. per candidate tag (not ``latest``, not ``release-*``): ``GET`` its manifest by tag,
       and ``GET`` the config blob only for a config digest not seen before (the images
       are shared, so that is about once per image);
    3. decide: keep the 10 newest, delete the rest created before now - 30 days;
    4. the dummy-manifest recipe: one blob upload (POST + PUT), one manifest ``PUT`` per
       tag to delete, one ``DELETE`` of the dummy digest.

    One token with pull,push,delete is minted before the clock starts. With ``readers``
    > 1, step 2 runs on that many threads (as our service reads), the rest stays sequential.
    """
    session = session_for(["pull", "push", "delete"], pool=readers)
    counter = Counter()
    phases: dict[str, float] = {}
    repo = f"{base}/v2/{REPOSITORY_PATH}"
    started = time.perf_counter()

    response = counter.send(session.get, f"{repo}/tags/list")
    assert "Link" not in response.headers
    names = sorted(response.json()["tags"])
    delete_re, keep_re = re.compile(POLICY["name_regex"]), re.compile(POLICY["name_regex_keep"])
    candidates = [n for n in names if n != "latest" and delete_re.fullmatch(n) and not keep_re.fullmatch(n)]
    phases["list tags"] = time.perf_counter() - started

    mark = time.perf_counter()
    config_created: dict[str, dt.datetime] = {}

    def read(name: str) -> dt.datetime:
        manifest = counter.send(session.get, f"{repo}/manifests/{name}", headers={"Accept": ACCEPT})
        config_digest = manifest.json()["config"]["digest"]
        if config_digest not in config_created:
            blob = counter.send(session.get, f"{repo}/blobs/{config_digest}")
            config_created[config_digest] = dt.datetime.fromisoformat(blob.json()["created"].replace("Z", "+00:00"))
        return config_created[config_digest]

    if readers > 1:
        with ThreadPoolExecutor(readers) as pool:
            created = dict(zip(candidates, pool.map(read, candidates), strict=True))
    else:
        created = {name: read(name) for name in candidates}
    newest_first = sorted(candidates, key=lambda n: (created[n], n), reverse=True)
    limit = now - dt.timedelta(days=int(POLICY["older_than"].rstrip("d")))
    to_delete = [n for n in newest_first[POLICY["keep_n"] :] if created[n] < limit]
    phases["read creation times"] = time.perf_counter() - mark

    mark = time.perf_counter()
    from container_registry.client import DUMMY_CONFIG_BODY, DUMMY_MANIFEST_BODY, DUMMY_MANIFEST_DIGEST

    upload_blob(session, base, DUMMY_CONFIG_BODY)
    counter.count += 2
    for name in to_delete:
        counter.send(
            session.put,
            f"{repo}/manifests/{name}",
            data=DUMMY_MANIFEST_BODY,
            headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
        )
    last = time.perf_counter()
    counter.send(session.delete, f"{repo}/manifests/{DUMMY_MANIFEST_DIGEST}")
    phases["delete (dummy recipe)"] = time.perf_counter() - mark
    phases["of which DELETE by digest"] = time.perf_counter() - last
    seconds = time.perf_counter() - started
    phases["decisions"] = seconds - sum(v for k, v in phases.items() if not k.startswith("of which"))
    name = "bare" if readers == 1 else f"bare, {readers} readers"
    return Measurement(name, seconds, len(to_delete), counter.count, phases)


class Counter:
    """Counts requests (thread-safe) and raises on an error status."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def send(self, method: Callable, url: str, **kwargs) -> requests.Response:
        with self._lock:
            self.count += 1
        response = method(url, **kwargs)
        response.raise_for_status()
        return response


# --- the run ---------------------------------------------------------------------------------


def prepare_project() -> None:
    from django.utils import timezone

    from container_registry.models import ContainerExpirationPolicy, ContainerRepository
    from gitlab_core.models import ApplicationSettings
    from tests_support.factories import make_group, make_project

    project = make_project(make_group(GROUP), PROJECT)
    ContainerRepository.objects.create(project=project, name=IMAGE)
    policy = ContainerExpirationPolicy.objects.get(project=project)
    for key, value in {"enabled": True, **POLICY}.items():
        setattr(policy, key, value)
    policy.save()
    ContainerExpirationPolicy.objects.filter(pk=policy.pk).update(next_run_at=timezone.now() - dt.timedelta(minutes=1))
    # One run may clean everything: no per-run tag limit, no deletion time budget.
    ApplicationSettings.current()
    ApplicationSettings.objects.filter(pk=1).update(
        container_registry_cleanup_tags_service_max_list_size=0,
        container_registry_delete_tags_service_timeout=0,
    )


def describe_machine(registry_data: Path) -> str:
    fields = (line.split(":", 1) for line in _read("/proc/cpuinfo").splitlines() if ":" in line)
    model = next((value.strip() for key, value in fields if key.strip() == "model name"), "unknown CPU")
    version = subprocess.run(["docker-registry", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{os.cpu_count()} cores ({model}); {version}; registry storage in {registry_data}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def measure(args: argparse.Namespace, work: Path, base: str, registry_data: Path) -> int:
    print(describe_machine(registry_data))
    prepare_project()
    started = time.perf_counter()
    fill = plan_fill(build_images(work, base), args.tags)
    print(f"images built and uploaded in {time.perf_counter() - started:.1f}s")
    results: dict[str, list[Measurement]] = {"ours": [], "bare": []}
    for round_number in range(1, args.rounds + 1):
        for name in ("ours", "bare"):
            filled = fill_repository(base, fill)
            print(f"round {round_number}: filled {len(fill.tags)} tags ({filled:.1f}s); running {name}")
            if name == "ours":
                measurement = ours(base, args.profile and round_number == 1)
            else:
                measurement = bare_cleanup(base, now=dt.datetime.now(dt.UTC), readers=args.bare_readers)
            measurement.load = os.getloadavg()[0]
            remaining = set(list_tags(base))
            if remaining != fill.expected_kept or measurement.deleted != fill.expected_deleted:
                print(f"FAIL: {name} left {len(remaining)} tags, expected {len(fill.expected_kept)}")
                return 1
            results[name].append(measurement)
            report_one(measurement)
    return summary(args, fill, results)


def report_one(m: Measurement) -> None:
    phases = ", ".join(f"{k} {v:.2f}s" for k, v in m.phases.items())
    print(
        f"  {m.name:4}: {m.deleted} tags deleted in {m.seconds:.2f}s = {m.rate:.0f} tags/s, "
        f"{m.requests} requests = {m.requests_per_tag:.2f} per tag, load {m.load:.1f}  [{phases}]"
    )


def summary(args: argparse.Namespace, fill: Fill, results: dict[str, list[Measurement]]) -> int:
    ours_rate = statistics.median(m.rate for m in results["ours"])
    bare_rate = statistics.median(m.rate for m in results["bare"])
    ratio = ours_rate / bare_rate
    print()
    print(f"repository: {len(fill.tags)} tags, {fill.expected_deleted} deleted by the policy {POLICY}")
    for name, rate in (("ours", ours_rate), ("bare", bare_rate)):
        first = results[name][0]
        print(f"{first.name}: {rate:.0f} tags/s (median), {first.requests_per_tag:.2f} requests/tag")
    print(f"ratio ours/bare: {ratio:.2f} (goal >= 0.8): {'OK' if ratio >= 0.8 else 'BELOW GOAL'}")
    print(f"one policy run cleaned the {len(fill.tags)}-tag repository: OK")
    return 0 if ratio >= 0.8 else 1


if __name__ == "__main__":
    sys.exit(main())
