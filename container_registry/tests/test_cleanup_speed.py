"""What keeps a cleanup run fast against the real registry (measured by bench/cleanup):
tags sharing an image cost one registry read each, a large run deletes in a bounded
number of rounds, because distribution 2.8 reads every tag link of the repository on each
DELETE by digest, and a cleanup split into several runs by the per-run maximum reads
each tag once."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import pytest
import requests

from container_registry import cleanup
from container_registry.cleanup import cleanup_tags
from container_registry.cleanup_rules import CleanupRules
from container_registry.client import ACCEPT_MANIFESTS, RegistryClient
from container_registry.models import ContainerExpirationPolicy, ContainerRepository
from container_registry.scheduling import run_policy_cleanup
from gitlab_core.models import ApplicationSettings
from jwt_auth.tokens import mint_registry_token
from tests_support.factories import make_group, make_project
from tests_support.registry import RequestCounter, build_image, skopeo, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("cleanup_brake_off")]

CREATED = datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)


def push_tags(registry, tmp_path, path: str, tags: list[str]) -> None:
    """Push one image as ``tags[0]`` with skopeo, then put its manifest under the other
    tags over HTTP (a skopeo copy per tag would take a tenth of a second each)."""
    source = build_image(tmp_path / "layout", size=100, seed="speed", created=CREATED, tag="speed")
    token, _ = mint_registry_token(access=[{"type": "repository", "name": path, "actions": ["pull", "push"]}])
    skopeo("copy", f"--dest-registry-token={token}", source, registry.ref(path, tags[0]))
    headers = {"Authorization": f"Bearer {token}"}
    manifest = requests.get(
        f"{registry.url}/v2/{path}/manifests/{tags[0]}", headers={**headers, "Accept": ACCEPT_MANIFESTS}, timeout=10
    )
    manifest.raise_for_status()
    for tag in tags[1:]:
        requests.put(
            f"{registry.url}/v2/{path}/manifests/{tag}",
            data=manifest.content,
            headers={**headers, "Content-Type": manifest.headers["Content-Type"]},
            timeout=10,
        ).raise_for_status()


def test_tags_sharing_an_image_cost_one_registry_read_each(registry, tmp_path):
    tags = [f"t{i}" for i in range(5)]
    push_tags(registry, tmp_path, "g/p/shared", tags)
    client = RegistryClient(base_url=registry.url, timeout=10)
    sent = RequestCounter(client)

    assert [client.tag_created_at("g/p/shared", tag) for tag in tags] == [CREATED] * 5
    # Five manifests, and the config blob they share once.
    assert sent.count == 6


def test_a_large_run_deletes_in_a_bounded_number_of_rounds(registry, tmp_path, monkeypatch):
    repository = ContainerRepository.objects.create(project=make_project(make_group("g"), "p"), name="rounds")
    push_tags(registry, tmp_path, "g/p/rounds", ["latest", *(f"t{i:02d}" for i in range(40))])
    monkeypatch.setattr(cleanup, "DELETE_BATCH_SIZE", 2)
    monkeypatch.setattr(cleanup, "MAX_DELETE_ROUNDS", 4)
    client = RegistryClient(base_url=registry.url, timeout=10)
    deletes: list[str] = []
    delete_manifest = client.delete_manifest

    def counting_delete_manifest(path: str, digest: str) -> bool:
        deletes.append(digest)
        return delete_manifest(path, digest)

    client.delete_manifest = counting_delete_manifest

    result = cleanup_tags(
        repository=repository, rules=CleanupRules(name_regex_delete="t.*"), policy_run=False, client=client
    )

    assert (result.status, result.deleted_size) == ("finished", 40)
    # 40 tags in batches of 2 would be 20 DELETEs; the batches grew to 10 tags.
    assert len(deletes) == 4
    assert client.list_tags("g/p/rounds") == ["latest"]


def push_own_images(registry, tmp_path, path: str, created: dict[str, datetime]) -> None:
    """Every tag its own image: one skopeo push, then per tag a config blob with that
    tag's creation time and a manifest pointing at it (over HTTP, for speed)."""
    first = next(iter(created))
    source = build_image(tmp_path / "layout", size=100, seed="own", created=created[first], tag="own")
    token, _ = mint_registry_token(access=[{"type": "repository", "name": path, "actions": ["pull", "push"]}])
    skopeo("copy", f"--dest-registry-token={token}", source, registry.ref(path, first))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    base = f"{registry.url}/v2/{path}"
    response = session.get(f"{base}/manifests/{first}", headers={"Accept": ACCEPT_MANIFESTS}, timeout=10)
    manifest, media_type = response.json(), response.headers["Content-Type"]
    config = session.get(f"{base}/blobs/{manifest['config']['digest']}", timeout=10).json()
    for tag, stamp in list(created.items())[1:]:
        body = json.dumps({**config, "created": stamp.isoformat().replace("+00:00", "Z")}).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        location = session.post(f"{base}/blobs/uploads/", timeout=10).headers["Location"]
        separator = "&" if "?" in location else "?"
        session.put(
            urljoin(registry.url, f"{location}{separator}digest={digest}"), data=body, timeout=10
        ).raise_for_status()
        own = {**manifest, "config": {**manifest["config"], "size": len(body), "digest": digest}}
        session.put(
            f"{base}/manifests/{tag}",
            data=json.dumps(own),
            headers={"Content-Type": media_type},
            timeout=10,
        ).raise_for_status()


def test_each_tag_is_read_once_per_cleanup_however_many_runs_it_takes(registry, tmp_path):
    project = make_project(make_group("g"), "p")
    repository = ContainerRepository.objects.create(project=project, name="once")
    # Name order is not age order: keep_n must keep t3, the newest by creation time.
    ages = {"t0": 5, "t1": 9, "t2": 2, "t3": 0, "t4": 7, "t5": 1, "t6": 8, "t7": 4, "t8": 6}
    push_own_images(registry, tmp_path, repository.path, {t: CREATED - timedelta(days=a) for t, a in ages.items()})
    # The pushes are over before the cleanup starts (a push counted between two runs
    # rightly makes the next one read again).
    wait_until(lambda: ContainerRepository.objects.get(pk=repository.pk).push_count == len(ages), message="push events")
    policy = ContainerExpirationPolicy.objects.get(project=project)
    policy.enabled, policy.name_regex, policy.keep_n = True, ".*", 1
    policy.save()
    ApplicationSettings.current()
    ApplicationSettings.objects.filter(pk=1).update(container_registry_cleanup_tags_service_max_list_size=3)
    ContainerRepository.objects.filter(pk=repository.pk).update(
        expiration_policy_cleanup_status=ContainerRepository.CleanupStatus.SCHEDULED
    )

    results, sent = [], []
    while not results or results[-1] == "unfinished":
        # A fresh client per run, as a re-queued task may land in another worker process.
        client = RegistryClient(base_url=registry.url, timeout=10)
        counter = RequestCounter(client)
        results.append(run_policy_cleanup(repository_id=repository.pk, client=client).result)
        sent += counter.sent
        assert len(results) <= 4

    assert results == ["unfinished", "unfinished", "finished"]
    assert RegistryClient(base_url=registry.url, timeout=10).list_tags(repository.path) == ["t3"]
    manifest_reads = Counter(p.rsplit("/", 1)[1] for m, p in sent if m == "GET" and "/manifests/" in p)
    config_reads = Counter(p for m, p in sent if m == "GET" and "/blobs/" in p)
    assert manifest_reads == dict.fromkeys(ages, 1)
    assert len(config_reads) == len(ages) and set(config_reads.values()) == {1}
