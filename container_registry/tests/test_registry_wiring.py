"""``registry_config``, the config comparison, the activity marks and the garbage
collection's refusals, without a registry (the end-to-end tests run the real one)."""

from __future__ import annotations

import datetime as dt
import io
import time

import pytest
import yaml
from django.core.cache import cache
from django.core.management import CommandError, call_command

from container_registry import registry_activity
from container_registry.registry_checks import check_notifications
from container_registry.registry_config import config_differences
from container_registry.tests.conftest import SECRET, envelope
from tests_support.registry import generate_key_pair

REALM = "https://gitlab.example.com/jwt/auth"


@pytest.fixture
def keys(settings, tmp_path):
    key = tmp_path / "keys" / "registry.key"
    generate_key_pair(key_path=key, cert_path=key.with_suffix(".crt"))
    settings.REGISTRY_KEY_PATH, settings.REGISTRY_CERT_PATH = str(key), None
    settings.REGISTRY_EXTRA_KEY_PATHS = []
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    return key


@pytest.fixture
def marks(db):
    keys = [registry_activity.PUSH_GRANTED, registry_activity.EVENT_RECEIVED]
    cache.delete_many(keys)
    registry_activity._written.clear()
    yield
    cache.delete_many(keys)
    registry_activity._written.clear()


def generate(*args: str) -> dict:
    out = io.StringIO()
    call_command("registry_config", *args, stdout=out, stderr=io.StringIO())
    assert out.getvalue().startswith("# config.yml of the container registry")
    return yaml.safe_load(out.getvalue())


def test_config_carries_our_issuer_service_certificate_and_secret(keys, settings):
    settings.REGISTRY_API_URL = "http://registry.internal:5005"

    config = generate(f"--realm-url={REALM}")

    assert config["auth"]["token"] == {
        "realm": REALM,
        "service": "container_registry",
        "issuer": settings.REGISTRY_ISSUER,
        "rootcertbundle": str(keys.with_suffix(".crt")),
    }
    endpoint = config["notifications"]["endpoints"][0]
    assert endpoint["url"] == "https://gitlab.example.com/api/v4/container_registry_event/events"
    assert endpoint["headers"] == {"Authorization": [SECRET]}
    assert config["http"]["addr"] == ":5005"
    assert config["storage"]["delete"] == {"enabled": True}
    assert config["storage"]["maintenance"]["readonly"] == {"enabled": False}
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert config_differences(config) == []


def test_config_options_and_a_stable_http_secret(keys):
    config = generate(
        f"--realm-url={REALM}",
        "--notifications-url=http://10.0.0.5:8000/api/v4/container_registry_event/events",
        "--storage-root=/srv/registry",
        "--listen=127.0.0.1:5000",
        "--read-only",
    )

    assert config["notifications"]["endpoints"][0]["url"].startswith("http://10.0.0.5:8000/")
    assert config["storage"]["filesystem"]["rootdirectory"] == "/srv/registry"
    assert config["http"]["addr"] == "127.0.0.1:5000"
    assert config["storage"]["maintenance"]["readonly"] == {"enabled": True}
    assert len(config["http"]["secret"]) >= 32
    assert generate(f"--realm-url={REALM}")["http"]["secret"] == config["http"]["secret"]


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--realm-url"),
        (["--realm-url=gitlab.example.com/jwt/auth"], "--realm-url must be an http"),
        ([f"--realm-url={REALM}", "--notifications-url=ftp://x/y"], "--notifications-url must be"),
    ],
)
def test_config_refuses_bad_options(keys, args, message):
    with pytest.raises(CommandError, match=message):
        generate(*args)


def test_config_refuses_an_empty_notification_secret(keys, settings):
    settings.REGISTRY_NOTIFICATION_SECRET = ""

    with pytest.raises(CommandError, match="REGISTRY_NOTIFICATION_SECRET is empty"):
        generate(f"--realm-url={REALM}")


def test_a_rotation_needs_a_bundle_file_holding_every_certificate(keys, settings, tmp_path):
    old = tmp_path / "old.key"
    generate_key_pair(key_path=old, cert_path=old.with_suffix(".crt"))
    settings.REGISTRY_EXTRA_KEY_PATHS = [str(old)]
    with pytest.raises(CommandError, match="pass --cert-bundle PATH"):
        generate(f"--realm-url={REALM}")
    bundle = tmp_path / "bundle.crt"

    config = generate(f"--realm-url={REALM}", f"--cert-bundle={bundle}")

    assert config["auth"]["token"]["rootcertbundle"] == str(bundle)
    assert bundle.read_text() == keys.with_suffix(".crt").read_text() + old.with_suffix(".crt").read_text()
    assert config_differences(config) == []


def test_differences_name_what_disagrees_without_showing_the_secret(keys, settings, tmp_path):
    config = generate(f"--realm-url={REALM}")
    other = tmp_path / "other.key"
    generate_key_pair(key_path=other, cert_path=other.with_suffix(".crt"))
    config["auth"]["token"]["issuer"] = "someone-else"
    config["auth"]["token"]["rootcertbundle"] = str(other.with_suffix(".crt"))
    config["storage"]["delete"]["enabled"] = False
    config["notifications"]["endpoints"][0]["headers"]["Authorization"] = ["not-our-secret"]

    problems = config_differences(config)

    assert problems[0] == f"auth.token.issuer is 'someone-else', ours (REGISTRY_ISSUER) is '{settings.REGISTRY_ISSUER}'"
    assert problems[1].startswith(f"the rootcertbundle {other.with_suffix('.crt')} lacks the certificate of key")
    assert problems[2].startswith("storage.delete.enabled is not true")
    assert problems[3] == "the notifications endpoint does not send our REGISTRY_NOTIFICATION_SECRET"
    assert SECRET not in " ".join(problems) and "not-our-secret" not in " ".join(problems)


def test_differences_of_a_config_without_auth_or_notifications(keys):
    problems = config_differences({"version": 0.1, "storage": "filesystem"})

    assert "auth.token.rootcertbundle is missing" in problems
    assert any(p.startswith("no enabled notifications endpoint posts to") for p in problems)


def test_accepted_events_are_marked_and_refused_ones_are_not(post_events, marks):
    assert post_events(envelope("push-manifest-oci.json"), secret="wrong").status_code == 401
    assert registry_activity.last_event_received_at() is None

    assert post_events(envelope("push-manifest-oci.json")).status_code == 200

    assert registry_activity.last_event_received_at() is not None


def test_a_push_granted_with_no_event_after_it_fails_the_notification_check(settings, marks):
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    now = dt.datetime.now(dt.UTC)
    cache.set(registry_activity.EVENT_RECEIVED, (now - dt.timedelta(hours=2)).timestamp())
    cache.set(registry_activity.PUSH_GRANTED, (now - dt.timedelta(hours=1)).timestamp())

    check = check_notifications(now=now)

    assert not check.ok
    assert "a push was granted and no event followed" in check.detail
    assert "Authorization secret" in check.fix
    # Its event is given time to arrive.
    assert check_notifications(now=now - dt.timedelta(minutes=58)).ok


def test_an_event_soon_after_the_grant_passes_even_when_its_write_was_skipped(settings, marks):
    settings.REGISTRY_NOTIFICATION_SECRET = SECRET
    now = dt.datetime.now(dt.UTC)
    granted = now - dt.timedelta(hours=1)
    # This process wrote the event mark a few seconds before the grant and skipped the next.
    cache.set(registry_activity.EVENT_RECEIVED, (granted - dt.timedelta(seconds=5)).timestamp())
    cache.set(registry_activity.PUSH_GRANTED, granted.timestamp())

    assert check_notifications(now=now).ok


def test_marks_are_written_at_most_once_per_interval_per_process(marks):
    registry_activity.note_push_granted()
    first = cache.get(registry_activity.PUSH_GRANTED)
    time.sleep(0.01)

    registry_activity.note_push_granted()

    assert cache.get(registry_activity.PUSH_GRANTED) == first


def test_garbage_collection_needs_the_registry_program(settings, tmp_path):
    settings.REGISTRY_BINARY = str(tmp_path / "no-such-registry")
    config = tmp_path / "config.yml"
    config.write_text("storage: {filesystem: {rootdirectory: /srv}}\n")

    with pytest.raises(CommandError, match="set REGISTRY_BINARY"):
        call_command("registry_garbage_collect", "--config", str(config))


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "cannot read"),
        ("storage: {s3: {bucket: b}}\n", "only the filesystem driver"),
        ("storage: [\n", "not valid YAML"),
    ],
)
def test_garbage_collection_needs_a_filesystem_config(settings, tmp_path, text, message):
    settings.REGISTRY_BINARY = "true"  # found on PATH; never run: the config is refused first
    config = tmp_path / "config.yml"
    if text is not None:
        config.write_text(text)

    with pytest.raises(CommandError, match=message):
        call_command("registry_garbage_collect", "--config", str(config))


def test_garbage_collection_takes_only_a_refused_connection_for_a_stopped_registry(settings):
    import socket

    from container_registry import garbage_collection
    from gitlab_core.errors import ServiceError

    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    settings.REGISTRY_API_URL = f"http://127.0.0.1:{port}"
    assert garbage_collection.registry_state() == "stopped"

    # Something listens but never answers (a registry too busy, or TLS the probe cannot
    # speak): that is not a stopped registry, and collection must not start.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    try:
        settings.REGISTRY_API_URL = f"https://127.0.0.1:{silent.getsockname()[1]}"
        settings.REGISTRY_REQUEST_TIMEOUT = 1
        with pytest.raises(ServiceError):
            garbage_collection.registry_state()
    finally:
        silent.close()
