"""The registry client against the real registry: manifest kinds, pagination, tag
deletion that spares tags sharing a digest."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import requests

from container_registry import client as client_module
from container_registry.client import DOCKER_MANIFEST_V2, OCI_INDEX, OCI_MANIFEST, RegistryClient, get_client
from jwt_auth.tokens import mint_registry_token
from tests_support.registry import RequestCounter, build_image, skopeo

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CREATED = datetime(2023, 5, 6, 7, 8, 9, tzinfo=UTC)


def push(registry, source: str, path: str, tag: str, *extra: str) -> None:
    token, _ = mint_registry_token(
        access=[{"type": "repository", "name": path, "actions": ["pull", "push"]}], lifetime=300
    )
    skopeo("copy", *extra, f"--dest-registry-token={token}", source, registry.ref(path, tag))


@pytest.fixture
def images(registry, tmp_path):
    layout = tmp_path / "layout"
    return {
        "a": build_image(layout, size=3000, seed="a", created=CREATED, tag="a"),
        "b": build_image(layout, size=5000, seed="b", tag="b"),
    }


def test_oci_and_docker_v2_manifests_with_details(registry, images):
    push(registry, images["a"], "g/p/oci", "v1")
    push(registry, images["a"], "g/p/docker", "v1", "--format=v2s2")
    client = get_client()
    oci = client.get_manifest("g/p/oci", "v1")
    docker = client.get_manifest("g/p/docker", "v1")
    assert (oci.media_type, docker.media_type) == (OCI_MANIFEST, DOCKER_MANIFEST_V2)
    details = client.tag_details("g/p/docker", "v1")
    assert details.digest == docker.digest == client.tag_digest("g/p/docker", "v1")
    assert details.created_at == CREATED
    # GitLab's total_size: the layers only (not the config, not the manifest).
    assert details.total_size == sum(layer["size"] for layer in docker.layers) > 0
    assert sum(details.blobs.values()) == docker.size + docker.config["size"] + details.total_size
    assert details.revision == docker.config["digest"].split(":")[1]
    assert client.tag_details("g/p/docker", "missing") is None
    assert client.tag_digest("g/p/docker", "missing") is None


def test_index_has_no_total_size_but_reaches_its_childrens_blobs(registry, images):
    push(registry, images["a"], "g/p/multi", "amd64")
    push(registry, images["b"], "g/p/multi", "arm64")
    client = get_client()
    children = [client.get_manifest("g/p/multi", tag) for tag in ("amd64", "arm64")]
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": m.digest,
                "size": m.size,
                "platform": {"os": "linux", "architecture": a},
            }
            for m, a in zip(children, ("amd64", "arm64"), strict=True)
        ],
    }
    body = json.dumps(index).encode()
    token, _ = mint_registry_token(
        access=[{"type": "repository", "name": "g/p/multi", "actions": ["pull", "push"]}], lifetime=300
    )
    response = requests.put(
        f"{registry.url}/v2/g/p/multi/manifests/both",
        data=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": OCI_INDEX},
        timeout=10,
    )
    assert response.status_code == 201, response.text

    details = client.tag_details("g/p/multi", "both")
    assert details.media_type == OCI_INDEX
    # As GitLab: an image index has no total size of its own.
    assert details.total_size is None
    children_blobs = [client.tag_details("g/p/multi", t).blobs for t in ("amd64", "arm64")]
    assert details.blobs == {details.digest: len(body), **children_blobs[0], **children_blobs[1]}
    assert details.created_at == CREATED  # from the first child


def test_tags_and_catalog_follow_pagination(registry, images, monkeypatch):
    for tag in ("t1", "t2", "t3", "t4", "t5"):
        push(registry, images["a"], "g/p/many", tag)
    push(registry, images["b"], "g/other", "x")
    monkeypatch.setattr(client_module, "TAGS_PAGE_SIZE", 1)
    client = RegistryClient(base_url=registry.url, timeout=10)
    sent = RequestCounter(client)
    # distribution 2.8 answers tags/list in one page whatever ``n`` says (Link-following
    # for tags is covered in test_client.py); its catalog does paginate.
    assert client.list_tags("g/p/many") == ["t1", "t2", "t3", "t4", "t5"]
    before = sent.count
    assert sorted(client.catalog()) == ["g/other", "g/p/many"]
    pages = list(client.catalog_pages(page_size=1))
    assert [path for page in pages for path in page] == ["g/other", "g/p/many"]
    assert len(pages) >= 2 and sent.count - before >= 2
    assert client.list_tags("g/never/pushed") == []


def test_delete_tags_spares_tags_sharing_the_digest(registry, images):
    for tag in ("keep", "latest", "drop1", "drop2"):
        push(registry, images["a"], "g/p/del", tag)
    client = get_client()
    digest = client.tag_digest("g/p/del", "keep")
    assert client.delete_tags("g/p/del", ["drop1", "drop2"]) == ["drop1", "drop2"]
    assert client.list_tags("g/p/del") == ["keep", "latest"]
    assert client.tag_digest("g/p/del", "keep") == digest
    assert client.tag_digest("g/p/del", "latest") == digest
    # Deleting again (the dummy config blob now exists) still works.
    assert client.delete_tags("g/p/del", ["latest"]) == ["latest"]
    assert client.list_tags("g/p/del") == ["keep"]
