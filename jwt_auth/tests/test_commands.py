"""Management commands: registry_keys, registry_cert_bundle, create_ci_job_token."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from jwt_auth.keys import libtrust_kid, load_key
from projects.models import CiJob

pytestmark = pytest.mark.django_db


def _run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_registry_keys_writes_key_and_cert_and_prints_the_kid(tmp_path):
    out, _ = _run("registry_keys", "--key", str(tmp_path / "r.key"), "--cert", str(tmp_path / "bundle.pem"))
    key = load_key(tmp_path / "r.key", tmp_path / "bundle.pem")
    assert out.strip() == key.kid == libtrust_kid(key.public_key)
    assert key.certificate_pem is not None
    assert (tmp_path / "r.key").stat().st_mode & 0o777 == 0o600


def test_registry_keys_defaults_the_cert_path_and_offers_es256(tmp_path):
    out, _ = _run("registry_keys", "--key", str(tmp_path / "ec.key"), "--algorithm", "ES256")
    key = load_key(tmp_path / "ec.key")
    assert key.algorithm == "ES256" and out.strip() == key.kid
    assert (tmp_path / "ec.crt").exists()


def test_registry_keys_refuses_to_overwrite_a_key(tmp_path):
    _run("registry_keys", "--key", str(tmp_path / "r.key"))
    with pytest.raises(CommandError, match="exists"):
        _run("registry_keys", "--key", str(tmp_path / "r.key"))
    assert _run("registry_keys", "--key", str(tmp_path / "r.key"), "--force")[0].strip()


def test_cert_bundle_prints_every_configured_certificate(settings, rsa_key, old_rsa_key, tmp_path):
    settings.REGISTRY_EXTRA_KEY_PATHS = [str(old_rsa_key.key_path)]
    out, _ = _run("registry_cert_bundle")
    assert out == rsa_key.cert_path.read_text() + old_rsa_key.cert_path.read_text()
    _run("registry_cert_bundle", "--output", str(tmp_path / "bundle.pem"))
    assert (tmp_path / "bundle.pem").read_text() == out


def test_cert_bundle_fails_clearly_for_a_key_without_certificate(settings, tmp_path):
    from jwt_auth.keys import generate_key_pair

    generate_key_pair(key_path=tmp_path / "x.key", cert_path=tmp_path / "elsewhere.crt")
    settings.REGISTRY_EXTRA_KEY_PATHS = [str(tmp_path / "x.key")]
    with pytest.raises(CommandError, match="no certificate"):
        _run("registry_cert_bundle")


def test_ci_job_token_is_printed_alone_and_works_until_the_job_finishes(realm, world):
    out, _ = _run("create_ci_job_token", "--project", "ACME/platform/svc", "--user", "developer")
    token = out.strip()
    assert out == token + "\n" and token.startswith("glcbt-")
    job = CiJob.objects.get()
    assert job.user == world["users"]["developer"] and job.status == "running"
    assert realm.get("repository:acme/platform/svc:push", creds=("gitlab-ci-token", token)).status_code == 200

    _run("create_ci_job_token", "--finish", token)
    job.refresh_from_db()
    assert job.status == "success" and job.finished_at is not None
    assert realm.get("repository:acme/platform/svc:push", creds=("gitlab-ci-token", token)).status_code == 401


def test_ci_job_can_be_finished_by_id_with_a_status(world):
    _run("create_ci_job_token", "--project", "acme/platform/svc")
    job = CiJob.objects.get()
    _run("create_ci_job_token", "--finish", str(job.pk), "--status", "failed")
    job.refresh_from_db()
    assert job.status == "failed" and job.user is None


@pytest.mark.parametrize(
    "args,message",
    [
        (["--project", "acme/nope"], "not found"),
        (["--project", "acme/platform/svc", "--user", "ghost"], "not found"),
        ([], "--project is required"),
        (["--finish", "glcbt-unknown"], "no such CI job"),
    ],
)
def test_ci_job_command_errors_are_clear(world, args, message):
    with pytest.raises(CommandError, match=message):
        _run("create_ci_job_token", *args)
    assert not CiJob.objects.exists()
