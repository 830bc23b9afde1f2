"""The registry's wiring against the real registry (distribution 2.8) and skopeo:
``registry_config`` output runs it, ``registry_check`` passes or names what is wrong,
and ``registry_garbage_collect`` frees the space of deleted tags while nothing writes."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import pytest
import requests
import yaml
from django.core.cache import cache
from django.core.management import CommandError, call_command

from container_registry import registry_activity
from container_registry.client import get_client
from container_registry.garbage_collection import directory_size
from container_registry.models import ContainerRepository
from container_registry.registry_checks import run_checks
from container_registry.registry_config import render
from jwt_auth.tokens import mint_registry_token
from projects.models import AccessLevel, ProjectMember
from tests_support.factories import make_group, make_project, make_token, make_user
from tests_support.registry import (
    Registry,
    build_image,
    free_port,
    generate_key_pair,
    list_tags,
    skopeo,
    wait_until,
)
from tests_support.registry_fixtures import NOTIFICATION_PATH, _require_tools, _wait_for_quiet_database

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

LAYER_BYTES = 512 * 1024


@pytest.fixture
def pusher(db):
    """A maintainer of ``acme/svc`` and the skopeo credentials of their token."""
    user = make_user("pusher")
    project = make_project(make_group("acme"), "svc")
    ProjectMember.objects.create(project=project, user=user, access_level=AccessLevel.MAINTAINER)
    return project, f"pusher:{make_token(user, scopes=['api', 'write_registry', 'read_registry'])}"


class GeneratedRegistry:
    """A registry started from ``manage.py registry_config`` output (restartable with
    other options on the same storage and port)."""

    def __init__(self, tmp_path: Path, live_server, settings):
        self.dir = tmp_path / "generated"
        self.dir.mkdir()
        self.live_server = live_server
        port = free_port()
        settings.REGISTRY_API_URL = f"http://127.0.0.1:{port}"
        settings.REGISTRY_HOST_PORT = f"127.0.0.1:{port}"
        self.instance = Registry(
            port=port,
            data_dir=self.dir / "data",
            config_path=self.dir / "config.yml",
            log_path=self.dir / "registry.log",
        )

    def configure(self, *extra: str) -> dict:
        out = io.StringIO()
        call_command(
            "registry_config",
            f"--realm-url={self.live_server.url}/jwt/auth",
            f"--storage-root={self.instance.data_dir}",
            f"--listen={self.instance.host_port}",
            *extra,
            stdout=out,
            stderr=io.StringIO(),
        )
        self.instance.config_path.write_text(out.getvalue())
        return yaml.safe_load(out.getvalue())

    def restart(self, *extra: str) -> dict:
        self.instance.stop()
        config = self.configure(*extra)
        self.instance.start()
        return config


@pytest.fixture
def generated(live_server, settings, registry_keys, tmp_path):
    _require_tools()
    settings.REGISTRY_KEY_PATH = str(registry_keys.key_path)
    settings.REGISTRY_CERT_PATH = str(registry_keys.cert_path)
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_NOTIFICATION_SECRET = "wiring-secret-" + "x" * 20
    cache.delete_many([registry_activity.PUSH_GRANTED, registry_activity.EVENT_RECEIVED])
    registry_activity._written.clear()
    registry = GeneratedRegistry(tmp_path, live_server, settings)
    try:
        yield registry
    finally:
        registry.instance.stop()
        _wait_for_quiet_database()


def run_check(*args: str) -> tuple[str, str | None]:
    """``registry_check``'s output and its error (None when every check passed)."""
    out = io.StringIO()
    try:
        call_command("registry_check", *args, stdout=out, stderr=io.StringIO())
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def collect(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("registry_garbage_collect", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_generated_config_runs_the_registry_push_pull_and_events_reach_us(generated, pusher, tmp_path):
    project, creds = pusher
    config = generated.configure()
    generated.instance.start()
    registry = generated.instance

    endpoint = config["notifications"]["endpoints"][0]
    assert endpoint["url"] == f"{generated.live_server.url}{NOTIFICATION_PATH}"
    source = build_image(tmp_path / "layout", size=4096, seed="wired")
    skopeo("copy", source, registry.ref("acme/svc/app", "v1"), creds=creds)
    skopeo("copy", registry.ref("acme/svc/app", "v1"), f"oci:{tmp_path / 'pulled'}:v1", creds=creds)

    wait_until(
        lambda: ContainerRepository.objects.filter(project=project, name="app", last_pushed_at__isnull=False).first(),
        message="the push event",
    )
    assert json.loads((tmp_path / "pulled" / "index.json").read_text())["manifests"]
    assert registry_activity.last_event_received_at() is not None
    output, error = run_check()
    assert error is None, output
    assert [line.split()[0] for line in output.splitlines()] == ["ok"] * 5


def test_check_names_the_issuer_when_the_registry_trusts_another(generated, settings):
    issuer = settings.REGISTRY_ISSUER
    settings.REGISTRY_ISSUER = "someone-else"
    generated.configure()
    generated.instance.start()
    settings.REGISTRY_ISSUER = issuer

    output, error = run_check()

    assert error is not None and "registry accepts our tokens" in error
    lines = {line.split(":", 1)[0]: line for line in output.splitlines()}
    assert lines["ok   registry answers /v2/"]
    failed = lines["FAIL registry accepts our tokens"]
    assert f"issuer {issuer}" in failed and "Fix: regenerate" in failed
    assert "token from untrusted issuer" in generated.instance.log()

    output, error = run_check(f"--config={generated.instance.config_path}")

    lines = {line.split(":", 1)[0]: line for line in output.splitlines()}
    assert (
        f"auth.token.issuer is 'someone-else', ours (REGISTRY_ISSUER) is '{issuer}'"
        in (lines["FAIL config file agrees"])
    )
    assert "its config file says why: " in lines["FAIL registry accepts our tokens"]
    assert settings.REGISTRY_NOTIFICATION_SECRET not in output


def test_check_names_disabled_deletes(generated):
    config = generated.configure()
    config["storage"]["delete"]["enabled"] = False
    generated.instance.config_path.write_text(render(config))
    generated.instance.start()

    output, error = run_check()

    assert "FAIL deletes enabled: the registry answers deletes with 405 UNSUPPORTED" in output
    assert "ok   registry accepts writes" in output
    assert error is not None and "deletes enabled" in error
    assert list(generated.instance.data_dir.rglob("*")) == []  # the probes wrote nothing


def test_the_write_probe_of_a_writable_registry_writes_nothing(generated):
    generated.configure()
    generated.instance.start()

    output, error = run_check()

    assert "ok   deletes enabled" in output and "ok   registry accepts writes" in output
    assert list(generated.instance.data_dir.rglob("*")) == []


def test_check_names_lost_notifications_when_the_registry_sends_another_secret(generated, settings, pusher, tmp_path):
    project, creds = pusher
    secret = settings.REGISTRY_NOTIFICATION_SECRET
    settings.REGISTRY_NOTIFICATION_SECRET = "a-secret-the-receiver-does-not-know"
    generated.configure()
    generated.instance.start()
    settings.REGISTRY_NOTIFICATION_SECRET = secret
    source = build_image(tmp_path / "layout", size=4096, seed="lost")
    skopeo("copy", source, generated.instance.ref("acme/svc/app", "v1"), creds=creds)
    wait_until(lambda: "401" in generated.instance.log(), message="a refused delivery")

    now = dt.datetime.now(dt.UTC)
    assert {check.name: check.ok for check in run_checks(now=now)}["notifications arrive"]  # its grace
    checks = {check.name: check for check in run_checks(now=now + dt.timedelta(minutes=6))}

    lost = checks["notifications arrive"]
    assert not lost.ok and "no event followed" in lost.detail
    assert "last event received never" in lost.detail
    assert all(check.ok for name, check in checks.items() if name != "notifications arrive")
    output, error = run_check(f"--config={generated.instance.config_path}")
    assert "does not send our REGISTRY_NOTIFICATION_SECRET" in output
    assert secret not in output and "a-secret-the-receiver-does-not-know" not in output


def test_a_rotation_bundle_trusts_both_keys(generated, settings, tmp_path):
    old, new = tmp_path / "old.key", tmp_path / "new.key"
    for key in (old, new):
        generate_key_pair(key_path=key, cert_path=key.with_suffix(".crt"))
    settings.REGISTRY_KEY_PATH, settings.REGISTRY_CERT_PATH = str(new), None
    settings.REGISTRY_EXTRA_KEY_PATHS = [str(old)]
    with pytest.raises(CommandError, match="--cert-bundle"):
        generated.configure()
    bundle = tmp_path / "bundle" / "registry-bundle.crt"

    config = generated.configure(f"--cert-bundle={bundle}")
    generated.instance.start()

    assert config["auth"]["token"]["rootcertbundle"] == str(bundle)
    assert bundle.read_text().count("BEGIN CERTIFICATE") == 2
    for signing, extra in ((new, old), (old, new)):
        settings.REGISTRY_KEY_PATH, settings.REGISTRY_EXTRA_KEY_PATHS = str(signing), [str(extra)]
        token, _ = mint_registry_token(access=[])
        answer = requests.get(f"{generated.instance.url}/v2/", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert answer.status_code == 200, signing
    output, error = run_check(f"--config={generated.instance.config_path}")
    assert "ok   config file agrees" in output and "ok   registry accepts our tokens" in output


def test_check_reports_a_read_only_registry_and_a_stopped_one(generated):
    generated.configure("--read-only")
    generated.instance.start()

    output, error = run_check()
    assert "FAIL registry accepts writes: the registry is in read-only mode" in output
    assert "ok   registry accepts our tokens" in output

    generated.instance.stop()
    output, error = run_check()
    assert output.startswith("FAIL registry answers /v2/") and "start the registry" in output
    assert error is not None


def test_garbage_collection_frees_deleted_tags_and_keeps_the_rest(generated, pusher, tmp_path):
    project, creds = pusher
    generated.configure()
    generated.instance.start()
    registry = generated.instance
    for tag, seed in (("keep", "kept-layer"), ("gone", "gone-layer"), ("also-gone", "other-gone-layer")):
        source = build_image(tmp_path / f"layout-{tag}", size=LAYER_BYTES, seed=seed, tag=tag)
        skopeo("copy", source, registry.ref("acme/svc/app", tag), creds=creds)
    assert get_client().delete_tags("acme/svc/app", ["gone", "also-gone"]) == ["gone", "also-gone"]
    assert list_tags(registry, "acme/svc/app", creds=creds) == ["keep"]
    config = str(registry.config_path)
    before = directory_size(registry.data_dir)

    for dry_run in ((), ("--dry-run",)):
        with pytest.raises(CommandError, match="accepts writes"):
            collect("--config", config, "--delete-untagged", *dry_run)
    assert directory_size(registry.data_dir) == before

    generated.restart("--read-only")
    out, _ = collect("--config", config, "--delete-untagged", "--dry-run")
    assert out.startswith("would remove 8 blobs and 2 manifests") and directory_size(registry.data_dir) == before

    out, err = collect("--config", config, "--delete-untagged")

    freed = before - directory_size(registry.data_dir)
    assert freed > 2 * LAYER_BYTES, out
    assert f"{freed} freed" in out and "read-only" in err
    # Two layers, two configs, two image manifests, our dummy manifest and its config.
    assert out.startswith("removed 8 blobs and 2 manifests")
    generated.restart()
    assert list_tags(registry, "acme/svc/app", creds=creds) == ["keep"]
    skopeo("copy", registry.ref("acme/svc/app", "keep"), f"oci:{tmp_path / 'after'}:keep", creds=creds)
    # Tag deletion still works although the collection removed its dummy config blob.
    skopeo("copy", registry.ref("acme/svc/app", "keep"), registry.ref("acme/svc/app", "later"), creds=creds)
    assert get_client().delete_tags("acme/svc/app", ["later"]) == ["later"]
    assert list_tags(registry, "acme/svc/app", creds=creds) == ["keep"]


def test_garbage_collection_of_a_stopped_registry_without_untagged_keeps_untagged_images(generated, pusher, tmp_path):
    project, creds = pusher
    generated.configure()
    generated.instance.start()
    registry = generated.instance
    source = build_image(tmp_path / "layout", size=LAYER_BYTES, seed="untagged", tag="gone")
    skopeo("copy", source, registry.ref("acme/svc/app", "gone"), creds=creds)
    get_client().delete_tags("acme/svc/app", ["gone"])
    registry.stop()
    before = directory_size(registry.data_dir)

    out, err = collect("--config", str(registry.config_path))

    # Only our dummy manifest and config go: the image's untagged manifest keeps its layer.
    assert "registry stopped" in err
    assert 0 < before - directory_size(registry.data_dir) < LAYER_BYTES, out
