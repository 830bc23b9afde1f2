"""The end-to-end harness itself: the real registry starts, challenges, restarts."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

import pytest
import requests
import yaml

from tests_support.factories import make_token
from tests_support.registry import RegistryError, build_image, skopeo

pytestmark = pytest.mark.e2e


def test_registry_answers_v2_with_401_and_our_realm(registry, live_server):
    response = requests.get(f"{registry.url}/v2/", timeout=5)

    assert response.status_code == 401
    challenge = response.headers["Www-Authenticate"]
    assert f'realm="{live_server.url}/jwt/auth"' in challenge
    assert 'service="container_registry"' in challenge


def test_registry_settings_point_at_the_running_registry(registry, settings):
    assert settings.REGISTRY_API_URL == registry.url
    assert settings.REGISTRY_HOST_PORT == registry.host_port
    assert settings.REGISTRY_NOTIFICATION_SECRET
    config = yaml.safe_load(registry.config_path.read_text())
    assert config["notifications"]["endpoints"][0]["headers"]["Authorization"] == [
        settings.REGISTRY_NOTIFICATION_SECRET
    ]
    assert config["storage"]["delete"]["enabled"] is True


def test_registry_restarts_with_the_same_storage(registry):
    marker = registry.data_dir / "marker"
    marker.write_text("kept")
    registry.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{registry.url}/v2/", timeout=2)

    registry.start()

    assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 401
    assert marker.read_text() == "kept"


def test_registry_refuses_a_port_that_already_answers(registry):
    registry.stop()
    with socket.socket() as squatter:
        # The stopped registry's connections linger in TIME_WAIT.
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", registry.port))
        squatter.listen()
        with pytest.raises(RegistryError, match="already answers"):
            registry.start()


def test_build_image_sets_size_seed_and_creation_time(tmp_path):
    created = datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
    first = build_image(tmp_path / "layout", size=4096, seed="a", created=created, tag="one")
    same = build_image(tmp_path / "layout", size=4096, seed="a", tag="two")
    other = build_image(tmp_path / "layout", size=4096, seed="b", tag="three")

    info = {ref: json.loads(skopeo("inspect", ref).stdout) for ref in (first, same, other)}

    assert first == f"oci:{tmp_path / 'layout'}:one"
    assert info[first]["Created"].startswith("2021-03-04T05:06:07")
    assert info[first]["Layers"] == info[same]["Layers"]
    assert info[first]["Layers"] != info[other]["Layers"]
    raw = json.loads(skopeo("inspect", "--raw", first).stdout)
    assert raw["layers"][0]["size"] > 4096


def test_an_admin_pushes_and_lists_tags_with_a_personal_access_token(registry, tmp_path, admin, world):
    secret = make_token(admin, ["api", "read_registry", "write_registry"])
    image = build_image(tmp_path / "image", size=2048, seed="smoke")

    skopeo("copy", image, registry.ref("acme/platform/svc/app", "v1"), creds=f"root:{secret}")
    tags = json.loads(
        skopeo("list-tags", f"docker://{registry.host_port}/acme/platform/svc/app", creds=f"root:{secret}").stdout
    )

    assert tags["Tags"] == ["v1"]
