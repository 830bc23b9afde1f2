"""What keeps a cleanup run fast against the real registry (measured by bench/cleanup):
tags sharing an image cost one registry read each, and a large run deletes in a bounded
number of rounds, because distribution 2.8 reads every tag link of the repository on each
DELETE by digest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests

from container_registry import cleanup
from container_registry.cleanup import cleanup_tags
from container_registry.cleanup_rules import CleanupRules
from container_registry.client import ACCEPT_MANIFESTS, RegistryClient
from container_registry.models import ContainerRepository
from jwt_auth.tokens import mint_registry_token
from tests_support.factories import make_group, make_project
from tests_support.registry import RequestCounter, build_image, skopeo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

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
