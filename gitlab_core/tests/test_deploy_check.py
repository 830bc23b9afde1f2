"""Production-safe defaults: Django's deployment check passes with the production values the
README lists, every value it asks for is set from the environment, and the HTTPS redirect
leaves the health check and the registry's endpoints alone."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests_support.registry import free_port, wait_until
from tests_support.wsgi import call_wsgi

ROOT = Path(__file__).resolve().parents[2]


def readme_production_values() -> dict[str, str]:
    """The ``NAME=value`` lines of the README's production block; a ``<...>`` value is a
    placeholder for a random secret."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- production-settings -->\s*```sh\n(.*?)```", readme, flags=re.S)
    assert block, "README.md lost its production settings block"
    values = dict(line.split("=", 1) for line in block.group(1).splitlines() if line.strip())
    return {name: secrets.token_urlsafe(64) if value.startswith("<") else value for name, value in values.items()}


def check_deploy(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SECURE_", "DEBUG", "SECRET_KEY"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "gitlab_core.settings", "VAR_DIR": str(tmp_path), **env})
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_production_values_pass_the_deployment_check(tmp_path):
    values = readme_production_values()

    result = check_deploy(tmp_path, values)

    assert values["DEBUG"] == "false"
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_without_them_the_deployment_check_names_each_missing_setting(tmp_path):
    result = check_deploy(tmp_path, {"SECRET_KEY": secrets.token_urlsafe(64)})

    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr + result.stdout


@pytest.fixture
def https_only(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600


def test_plain_http_is_redirected_except_the_health_check_and_the_registry_endpoints(https_only, client, db):
    api = client.get("/api/v4/user")
    health = client.get("/-/health")
    realm = call_wsgi("GET", "/jwt/auth", QUERY_STRING="service=container_registry")
    secure = client.get("/api/v4/user", secure=True)

    assert api.status_code == 301
    assert api["Location"] == "https://testserver/api/v4/user"
    assert health.status_code == 200
    assert realm.status_code != 301
    assert secure.status_code == 401
    assert secure["Strict-Transport-Security"] == "max-age=3600"


def test_run_sh_starts_the_service_with_debug_off_and_a_key_it_writes_once(tmp_path):
    """The one command on a fresh checkout: no SECRET_KEY, no DEBUG given."""
    var_dir, port = tmp_path / "var", free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    env.update(
        VAR_DIR=str(var_dir),
        PORT=str(port),
        WEB_CONCURRENCY="1",
        WORKER_CONCURRENCY="1",
        REGISTRY_API_URL=f"http://127.0.0.1:{free_port()}",  # no registry: the service starts anyway
    )
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [str(ROOT / "scripts" / "run.sh")], cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert process.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        try:
            return requests.get(f"{base}/-/health", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(healthy, timeout=240, message="scripts/run.sh serving /-/health")
        failing = requests.get(f"{base}/no-such-page", timeout=10, allow_redirects=False)
        key = (var_dir / "secret_key").read_text().strip()
        mode = (var_dir / "secret_key").stat().st_mode & 0o777
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        log.close()

    assert mode == 0o600
    assert len(key) >= 50
    # DEBUG is off: no debug page listing the URL patterns and settings.
    assert failing.status_code == 404
    assert "URLconf" not in failing.text and "DEBUG = True" not in failing.text
    assert key not in (tmp_path / "run.log").read_text()


_NOT_INHERITED = ("DJANGO_", "DATABASE_", "CELERY_", "CACHE_", "SECRET_KEY", "DEBUG", "REGISTRY_", "PYTEST", "VAR_DIR")
