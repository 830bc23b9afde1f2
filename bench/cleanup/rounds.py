"""Benchmark of a whole cleanup under the default per-run limits, against the real registry.

    .venv/bin/python bench/cleanup/rounds.py [--tags 2000] [--database-url postgres://...]
        [--registry-dir /dev/shm]

Where ``run.py`` turns the per-run limits off and cleans a repository in one run, this
one keeps the application's defaults (at most 200 tags per run, 250 s per run, caching
on): a repository of ``--tags`` tags is cleaned by as many policy runs as it takes, each
started the way a re-queued task starts it (``run_policy_cleanup`` on the unfinished
repository, one worker process, so one registry client for every run). The policy is
``name_regex: .*``, ``keep_n: 1``; every tag is its own image (its own config blob and
creation time, one shared layer), so no read is saved by images shared between tags.

The reference, in the same run on an identically filled repository, is the bare loop of
the same recipe: list the tags, read each tag's manifest and config once, one
dummy-manifest ``PUT`` per tag to delete, one ``DELETE`` (``run.py``'s ``bare_cleanup``
without images to share). It prints tags deleted per second, registry requests per
deleted tag, how many runs the cleanup took, the ratio ours/bare (goal >= 0.8) and
checks that both left exactly the newest tag. Not run by CI or the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as common  # noqa: E402 -- the sibling benchmark's registry, fill and bare-loop helpers

REPOSITORY_PATH = common.REPOSITORY_PATH
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
POLICY = {"name_regex": ".*", "name_regex_keep": None, "keep_n": 1, "older_than": None}
EPOCH = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=2000, help="tags in the repository (default 2000)")
    parser.add_argument("--database-url", default=None, help="a throwaway database (default: temporary SQLite)")
    parser.add_argument("--registry-dir", type=Path, default=None, help="parent directory of the registry's storage")
    parser.add_argument("--keep-work", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if args.tags < 10:
        parser.error("--tags must be at least 10")
    return args


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-cleanup-rounds-"))
    try:
        return start(args, work)
    finally:
        if not args.keep_work:
            shutil.rmtree(work, ignore_errors=True)


def start(args: argparse.Namespace, work: Path) -> int:
    common.setup_django(work, args.database_url)
    from django.conf import settings

    from tests_support.registry import create_registry, generate_key_pair, missing_tools

    if missing_tools():
        print(f"missing: {', '.join(missing_tools())}")
        return 2
    key_path = Path(settings.REGISTRY_KEY_PATH)
    key_path.parent.mkdir(parents=True)
    generate_key_pair(key_path=key_path, cert_path=key_path.with_suffix(".crt"))
    parent = Path(tempfile.mkdtemp(prefix="bench-registry-", dir=args.registry_dir)) if args.registry_dir else None
    registry = create_registry(
        work_dir=parent or work / "registry",
        realm="http://127.0.0.1:9/jwt/auth",  # never called: tokens are minted with the key
        issuer=settings.REGISTRY_ISSUER,
        cert_bundle=key_path.with_suffix(".crt"),
        notification_url=None,
        notification_secret="",
    )
    settings.REGISTRY_API_URL = registry.url
    registry.start()
    try:
        return measure(args, work, registry.url, registry.data_dir)
    finally:
        registry.stop()
        if parent is not None and not args.keep_work:
            shutil.rmtree(parent, ignore_errors=True)


# --- filling ----------------------------------------------------------------------------------


def build_images(work: Path, base: str, count: int) -> common.Fill:
    """One umoci-built layer, then one config blob per tag (its own ``created``: tag i is
    EPOCH + a permutation of i minutes, so name order is not age order) and a manifest
    per tag. Returns the plan: the newest tag is the one kept."""
    from tests_support.registry import build_image

    layout = work / "layout"
    build_image(layout, size=512, created=EPOCH, seed="rounds", tag="base")
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads(common._layout_blob(layout, index["manifests"][0]["digest"]))
    config = json.loads(common._layout_blob(layout, manifest["config"]["digest"]))
    session = common.session_for(["pull", "push"], pool=common.FILL_THREADS)
    for layer in manifest["layers"]:
        common.upload_blob(session, base, common._layout_blob(layout, layer["digest"]))
    step = next(p for p in (7919, 104729, 1299709) if count % p)  # coprime with count

    def image(i: int) -> tuple[str, bytes, dt.datetime]:
        created = EPOCH + dt.timedelta(minutes=(i * step) % count)
        body = json.dumps({**config, "created": created.isoformat().replace("+00:00", "Z")}).encode()
        digest = common.upload_blob(session, base, body)
        own = {**manifest, "config": {"mediaType": OCI_CONFIG, "size": len(body), "digest": digest}}
        return f"t-{i:06d}", json.dumps(own).encode(), created

    fill = common.Fill()
    with ThreadPoolExecutor(common.FILL_THREADS) as pool:
        built = list(pool.map(image, range(count)))
    for tag, body, _created in built:
        key = hashlib.sha256(body).hexdigest()
        fill.manifests[key] = body
        fill.tags[tag] = key
    fill.expected_kept = {max(built, key=lambda b: b[2])[0]}
    return fill


# --- the two contenders -------------------------------------------------------------------------


def prepare_project() -> None:
    from django.utils import timezone

    from container_registry.models import ContainerExpirationPolicy, ContainerRepository
    from gitlab_core.models import ApplicationSettings
    from tests_support.factories import make_group, make_project

    project = make_project(make_group(common.GROUP), common.PROJECT)
    ContainerRepository.objects.create(project=project, name=common.IMAGE)
    policy = ContainerExpirationPolicy.objects.get(project=project)
    for key, value in {"enabled": True, **POLICY}.items():
        setattr(policy, key, value)
    policy.save()
    ContainerExpirationPolicy.objects.filter(pk=policy.pk).update(next_run_at=timezone.now() - dt.timedelta(minutes=1))
    # The application's defaults, stated: the point of this benchmark.
    defaults = {
        name: ApplicationSettings._meta.get_field(name).default
        for name in (
            "container_registry_cleanup_tags_service_max_list_size",
            "container_registry_delete_tags_service_timeout",
            "container_registry_expiration_policies_caching",
        )
    }
    ApplicationSettings.current()
    ApplicationSettings.objects.filter(pk=1).update(**defaults)
    print(f"settings: {defaults}")


def ours(base: str) -> tuple[common.Measurement, int]:
    """Policy runs until the cleanup finishes, as re-queued tasks of one worker process."""
    from django.conf import settings
    from django.core.cache import cache

    from container_registry import cleanup
    from container_registry.client import RegistryClient
    from container_registry.models import ContainerRepository
    from container_registry.scheduling import run_policy_cleanup
    from tests_support.registry import RequestCounter

    cache.clear()
    repository = ContainerRepository.objects.get(project__full_path_lower=f"{common.GROUP}/{common.PROJECT}")
    ContainerRepository.objects.filter(pk=repository.pk).update(
        expiration_policy_cleanup_status=ContainerRepository.CleanupStatus.SCHEDULED
    )
    client = RegistryClient(base_url=base, timeout=settings.REGISTRY_REQUEST_TIMEOUT)
    counter = RequestCounter(client)
    phases = common.Phases()
    client.list_tags = phases.wrap("list tags", client.list_tags)
    client.delete_tags = phases.wrap("delete (dummy recipe)", client.delete_tags)
    client.delete_manifest = phases.wrap("of which DELETE by digest", client.delete_manifest)
    original_reader = cleanup.read_created_at
    cleanup.read_created_at = phases.wrap("read creation times", original_reader)
    deleted = runs = 0
    started = time.perf_counter()
    try:
        while True:
            outcome = run_policy_cleanup(repository_id=repository.pk, client=client)
            runs += 1
            assert outcome.cleanup is not None, f"run {runs} ended {outcome.result}"
            assert outcome.error is None, f"run {runs}: {outcome.error}"
            deleted += outcome.cleanup.deleted_size
            if outcome.result == "finished":
                break
            assert runs < 10_000, "the cleanup does not end"
    finally:
        cleanup.read_created_at = original_reader
    seconds = time.perf_counter() - started
    outer = sum(v for k, v in phases.seconds.items() if not k.startswith("of which"))
    phases.seconds["database, cache and decisions"] = seconds - outer
    return common.Measurement("ours", seconds, deleted, counter.count, phases.seconds), runs


def measure(args: argparse.Namespace, work: Path, base: str, registry_data: Path) -> int:
    print(common.describe_machine(registry_data))
    prepare_project()
    started = time.perf_counter()
    fill = build_images(work, base, args.tags)
    print(f"{args.tags} images uploaded and tagged in {time.perf_counter() - started:.1f}s")
    results: dict[str, common.Measurement] = {}
    runs = 0
    for name in ("ours", "bare"):
        filled = common.fill_repository(base, fill)
        print(f"filled {len(fill.tags)} tags ({filled:.1f}s); running {name}")
        if name == "ours":
            measurement, runs = ours(base)
        else:
            measurement = bare(base)
        measurement.load = os.getloadavg()[0]
        remaining = set(common.list_tags(base))
        if remaining != fill.expected_kept or measurement.deleted != fill.expected_deleted:
            print(
                f"FAIL: {name} left {len(remaining)} tags ({sorted(remaining)[:3]}...), expected {fill.expected_kept}"
            )
            return 1
        results[name] = measurement
        common.report_one(measurement)
    ratio = results["ours"].rate / results["bare"].rate
    print()
    print(f"repository: {len(fill.tags)} tags, each its own image; policy {POLICY}")
    print(
        f"ours: {results['ours'].rate:.0f} tags/s in {results['ours'].seconds:.0f}s over {runs} runs, "
        f"{results['ours'].requests_per_tag:.2f} requests/tag"
    )
    print(
        f"bare: {results['bare'].rate:.0f} tags/s in {results['bare'].seconds:.0f}s, "
        f"{results['bare'].requests_per_tag:.2f} requests/tag"
    )
    ok = ratio >= 0.8 and results["ours"].requests_per_tag < 4
    print(f"ratio ours/bare: {ratio:.2f} (goal >= 0.8, and under 4 requests/tag): {'OK' if ok else 'BELOW GOAL'}")
    return 0 if ok else 1


def bare(base: str) -> common.Measurement:
    """``run.py``'s bare loop with this benchmark's policy (every tag a candidate, keep
    the newest one, no age limit)."""
    saved = dict(common.POLICY)
    common.POLICY.update(name_regex=".*", name_regex_keep="(?!)", keep_n=1, older_than="0d")
    try:
        return common.bare_cleanup(base, now=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    finally:
        common.POLICY.clear()
        common.POLICY.update(saved)


if __name__ == "__main__":
    sys.exit(main())
