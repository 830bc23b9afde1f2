"""Settings come from the environment; bad values stop the process with a clear message.

Each case imports the settings in a fresh interpreter, because settings are read once
per process.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]
PROBE = """
import json, django
from django.conf import settings
django.setup()
from gitlab_core.celery import app
db = settings.DATABASES["default"]
print(json.dumps({
    "debug": settings.DEBUG,
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST"), "port": db.get("PORT"),
    "user": db.get("USER"),
    "broker": app.conf.broker_url,
    "cache": settings.CACHES["default"]["BACKEND"],
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "db_options": db.get("OPTIONS", {}),
    "secret_key": settings.SECRET_KEY,
}))
"""


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "CELERY_", "CACHE_"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "gitlab_core.settings", "VAR_DIR": str(tmp_path), **env})
    # DEBUG is off by default, and then a real key is needed: each case gets a random one
    # unless it passes its own (SECRET_KEY="" for none).
    clean.pop("DEBUG", None)
    clean["SECRET_KEY"] = secrets.token_urlsafe(64)
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=BASE_DIR, env=clean, capture_output=True, text=True, timeout=60
    )


def loaded(tmp_path: Path, **env: str) -> dict:
    result = load_settings(tmp_path, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_defaults_use_sqlite_in_var_dir_and_a_filesystem_broker(tmp_path):
    values = loaded(tmp_path)

    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(tmp_path / "db.sqlite3")
    assert values["broker"] == "filesystem://"
    assert values["cache"] == "django.core.cache.backends.db.DatabaseCache"
    assert (tmp_path / "broker" / "out").is_dir()


def test_database_url_selects_postgresql(tmp_path):
    values = loaded(tmp_path, DATABASE_URL="postgres://gitlab:s3cret@db.internal:5433/registry")

    assert values["engine"] == "django.db.backends.postgresql"
    assert (values["host"], values["port"], values["name"], values["user"]) == (
        "db.internal",
        5433,
        "registry",
        "gitlab",
    )


def test_redis_urls_select_the_redis_broker_and_cache(tmp_path):
    values = loaded(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:6390/0", CACHE_URL="redis://127.0.0.1:6390/1")

    assert values["broker"] == "redis://127.0.0.1:6390/0"
    assert values["cache"] == "gitlab_core.redis_cache.RedisCache"


def test_debug_is_off_by_default(tmp_path):
    assert loaded(tmp_path)["debug"] is False


def test_without_a_key_the_settings_refuse_to_start_unless_debug_is_asked_for(tmp_path):
    refused = load_settings(tmp_path, SECRET_KEY="")
    debugging = loaded(tmp_path, SECRET_KEY="", DEBUG="true")

    assert refused.returncode != 0
    assert "SECRET_KEY must be set" in refused.stderr
    assert debugging["debug"] is True


def test_the_key_file_that_run_sh_writes_is_the_secret_key(tmp_path):
    (tmp_path / "secret_key").write_text("k" * 20 + secrets.token_urlsafe(48) + "\n")

    values = loaded(tmp_path, SECRET_KEY="")

    assert values["debug"] is False
    assert values["secret_key"] == (tmp_path / "secret_key").read_text().strip()


def test_postgresql_connections_get_a_connect_timeout_and_no_statement_timeout_by_default(tmp_path):
    plain = loaded(tmp_path, DATABASE_URL="postgres://u@db:5432/registry")
    limited = loaded(
        tmp_path,
        DATABASE_URL="postgres://u@db:5432/registry",
        DATABASE_STATEMENT_TIMEOUT="7",
        DATABASE_CONNECT_TIMEOUT="3",
    )

    assert plain["db_options"]["connect_timeout"] == 5
    assert "statement_timeout" not in plain["db_options"].get("options", "")
    assert limited["db_options"]["connect_timeout"] == 3
    assert "-c statement_timeout=7000" in limited["db_options"]["options"]


def test_request_path_statements_are_prepared_with_generic_plans_unless_switched_off(tmp_path):
    prepared = loaded(tmp_path, DATABASE_URL="postgres://u@db:5432/registry")
    unprepared = loaded(tmp_path, DATABASE_URL="postgres://u@db:5432/registry", HOT_QUERIES_PREPARED="false")

    assert prepared["db_options"]["prepare_threshold"] == 5
    assert "plan_cache_mode=force_generic_plan" in prepared["db_options"]["options"]
    assert unprepared["db_options"]["prepare_threshold"] is None
    assert "plan_cache_mode" not in unprepared["db_options"].get("options", "")


def test_debug_off_refuses_the_development_secret_key(tmp_path):
    result = load_settings(tmp_path, DEBUG="false", SECRET_KEY="")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY must be set" in result.stderr
    assert "development key is refused" in result.stderr


def test_debug_off_refuses_a_short_secret_key(tmp_path):
    result = load_settings(tmp_path, DEBUG="0", SECRET_KEY="short")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_starts_with_a_real_secret_key(tmp_path):
    values = loaded(tmp_path, DEBUG="false", SECRET_KEY="x" * 50, ALLOWED_HOSTS="registry.example.com, gitlab")

    assert values["debug"] is False
    assert values["allowed_hosts"] == ["registry.example.com", "gitlab"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("SECURE_HSTS_SECONDS", "a year"),
        ("SESSION_COOKIE_SECURE", "sometimes"),
        ("DATABASE_CONNECT_TIMEOUT", "1"),
        ("REGISTRY_REQUEST_TIMEOUT", "fast"),
        ("REGISTRY_REQUEST_TIMEOUT", "0"),
        ("DATABASE_CONN_MAX_AGE", "-1"),
        ("AUTH_BAN_MAX_RETRY", "many"),
        ("DATABASE_URL", "mysqlx://root@db/registry"),
        ("DATABASE_URL", "postgres://u:p@db:notaport/registry"),
        ("CELERY_BROKER_URL", "amqp://guest@rabbit//"),
        ("CACHE_URL", "memcached://cache:11211"),
    ],
)
def test_a_bad_value_names_the_variable(tmp_path, name, value):
    result = load_settings(tmp_path, **{name: value})

    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured")
    assert name in last_line


def test_a_bad_database_url_does_not_echo_its_password(tmp_path):
    result = load_settings(tmp_path, DATABASE_URL="postgres://u:hunter2secret@db:notaport/registry")

    assert result.returncode != 0
    assert "hunter2secret" not in result.stderr
