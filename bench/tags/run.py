"""Benchmark of listing a repository's tags with their creation dates, against the real
registry (distribution 2.8), with the creation-time cache cold and warm.

    .venv/bin/python bench/tags/run.py [--tags 1000] [--images 1000] [--rounds 3]
                                       [--database-url postgres://...] [--cache-url redis://...]

Starts ``docker-registry`` with token auth trusting a freshly generated signing key (the
service mints its own tokens with it; no web realm runs), migrates a throwaway database
(SQLite in a temporary VAR_DIR unless ``--database-url`` is given), and fills one
repository over plain HTTP: ``--images`` distinct images (one shared layer, a config
blob each with its own ``created`` time) spread over ``--tags`` tags.

What is measured is what a caller of the tag cache does (a cleanup run reads dates the
same way): ``client.list_tags``, then the cached creation times
(``tag_cache.get_many``), the missing ones read from the registry
(``client.tag_details``) and cached (``tag_cache.set_many``), through a fresh registry
client whose session counts the registry requests. Scenarios, each ``--rounds`` times:

* cold: empty creation-time cache and a new client (nothing remembered anywhere);
* warm: cached dates are used until they expire (no registry request but the listing).

It checks that every tag got the date of its own image. Not run by CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

GROUP, PROJECT, IMAGE = "bench", "app", "image"
REPOSITORY_PATH = f"{GROUP}/{PROJECT}/{IMAGE}"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
FILL_THREADS = 4
EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--images", type=int, default=1000, help="distinct images the tags point at (<= --tags)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="a throwaway database (default: temporary SQLite)")
    parser.add_argument("--cache-url", default=None, help="redis://... (default: the database cache)")
    args = parser.parse_args()
    if not 1 <= args.images <= args.tags:
        parser.error("--images must be between 1 and --tags")
    return args


def setup_django(work: Path, database_url: str | None, cache_url: str | None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "gitlab_core.settings"
    os.environ["VAR_DIR"] = str(work / "var")
    os.environ["REGISTRY_KEY_PATH"] = str(work / "keys" / "registry.key")
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    if cache_url:
        os.environ["CACHE_URL"] = cache_url
    else:
        os.environ.pop("CACHE_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)


def session_for(actions: list[str]) -> requests.Session:
    from jwt_auth.tokens import mint_registry_token

    access = [{"type": "repository", "name": REPOSITORY_PATH, "actions": actions}]
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=FILL_THREADS))
    session.headers["Authorization"] = f"Bearer {mint_registry_token(access=access, lifetime=3600)[0]}"
    return session


def upload_blob(session: requests.Session, base: str, body: bytes) -> str:
    """Monolithic upload (POST + PUT) of one blob; returns its digest."""
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    started = session.post(f"{base}/v2/{REPOSITORY_PATH}/blobs/uploads/")
    started.raise_for_status()
    location = urljoin(base + "/", started.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = session.put(
        f"{location}{separator}digest={digest}", data=body, headers={"Content-Type": "application/octet-stream"}
    )
    done.raise_for_status()
    return digest


def fill(base: str, tags: int, images: int) -> dict[str, dt.datetime]:
    """Upload the images and tag them; returns each tag's expected creation time."""
    session = session_for(["pull", "push"])
    layer = os.urandom(4096)
    layer_digest = upload_blob(session, base, layer)
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()

    def image(index: int) -> tuple[bytes, dt.datetime]:
        created = EPOCH + dt.timedelta(hours=index)
        config = json.dumps(
            {
                "created": created.isoformat().replace("+00:00", "Z"),
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            }
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": upload_blob(session, base, config)},
            "layers": [{"mediaType": OCI_LAYER, "size": len(layer), "digest": layer_digest}],
        }
        return json.dumps(manifest).encode(), created

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        built = list(pool.map(image, range(images)))

    def put(index: int) -> tuple[str, dt.datetime]:
        body, created = built[index % images]
        tag = f"v{index:05d}"
        response = session.put(
            f"{base}/v2/{REPOSITORY_PATH}/manifests/{tag}", data=body, headers={"Content-Type": OCI_MANIFEST}
        )
        response.raise_for_status()
        return tag, created

    with ThreadPoolExecutor(FILL_THREADS) as pool:
        return dict(pool.map(put, range(tags)))


def tag_creation_times(repository, names: list[str], client) -> dict[str, dt.datetime | None]:
    """Creation time of each tag (None when unknown), read through the tag cache."""
    from container_registry import tag_cache

    result: dict[str, dt.datetime | None] = dict.fromkeys(names)
    known = tag_cache.get_many(repository.pk, names)
    result.update(known)
    fresh = {}
    for name in names:
        if name not in known:
            details = client.tag_details(repository.path, name)
            result[name] = fresh[name] = details.created_at if details else None
    tag_cache.set_many(repository.pk, fresh)
    return result


def list_with_dates(repository, *, cold: bool) -> tuple[float, int, dict]:
    """One listing through a fresh client: seconds, registry requests, dates."""
    from django.conf import settings
    from django.core.cache import cache

    from container_registry.client import RegistryClient
    from tests_support.registry import RequestCounter

    if cold:
        cache.clear()
    client = RegistryClient(base_url=settings.REGISTRY_API_URL, timeout=30)
    client.ping()  # the connection and the token are not what is measured
    sent = RequestCounter(client)
    started = time.perf_counter()
    names = client.list_tags(repository.path)
    dates = tag_creation_times(repository, names, client)
    return time.perf_counter() - started, sent.count, dates


def measure(args: argparse.Namespace, expected: dict[str, dt.datetime]) -> list[dict]:
    from container_registry.models import ContainerRepository
    from tests_support.factories import make_group, make_project

    project = make_project(make_group(GROUP), PROJECT)
    repository = ContainerRepository.objects.create(project=project, name=IMAGE)
    scenarios = [("cold (empty cache, new client)", True), ("warm (cached dates trusted)", False)]
    results = []
    for label, cold in scenarios:
        seconds, counts = [], []
        for _ in range(args.rounds):
            if not cold:
                list_with_dates(repository, cold=True)  # fill the cache
            elapsed, count, dates = list_with_dates(repository, cold=cold)
            assert dates == expected, "a tag got the wrong date"
            seconds.append(elapsed)
            counts.append(count)
        results.append(
            {
                "scenario": label,
                "seconds": statistics.median(seconds),
                "requests": statistics.median(counts),
                "requests_per_tag": statistics.median(counts) / len(expected),
            }
        )
    return results


def main() -> int:
    args = parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-tags-"))
    try:
        setup_django(work, args.database_url, args.cache_url)
        from django.conf import settings

        from tests_support.registry import create_registry, generate_key_pair, missing_tools

        if missing_tools():
            print(f"missing: {', '.join(missing_tools())} (apt-get install docker-registry skopeo umoci)")
            return 2
        key_path = Path(settings.REGISTRY_KEY_PATH)
        key_path.parent.mkdir(parents=True)
        generate_key_pair(key_path=key_path, cert_path=key_path.with_suffix(".crt"))
        registry = create_registry(
            work_dir=work / "registry",
            realm="http://127.0.0.1:9/jwt/auth",  # never called: tokens are minted with the key
            issuer=settings.REGISTRY_ISSUER,
            cert_bundle=key_path.with_suffix(".crt"),
            notification_url=None,
            notification_secret="",
        )
        settings.REGISTRY_API_URL = registry.url
        registry.start()
        try:
            started = time.perf_counter()
            expected = fill(registry.url, args.tags, args.images)
            print(f"filled {args.tags} tags ({args.images} images) in {time.perf_counter() - started:.1f} s")
            load = float(Path("/proc/loadavg").read_text().split()[0])
            results = measure(args, expected)
        finally:
            registry.stop()
        print(
            f"\n{args.tags} tags, {args.images} images, median of {args.rounds} rounds, "
            f"cache {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}, load average {load:.1f}\n"
        )
        print("| scenario | time | registry requests | per tag |")
        print("|---|---|---|---|")
        for r in results:
            print(f"| {r['scenario']} | {r['seconds']:.2f} s | {r['requests']:.0f} | {r['requests_per_tag']:.2f} |")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
