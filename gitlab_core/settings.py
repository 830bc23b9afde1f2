"""Django settings, read from the environment.

Defaults run from a fresh checkout without any server: SQLite in ``var/`` and a
filesystem Celery broker. Production differs only by environment variables
(``DATABASE_URL``, ``CELERY_BROKER_URL``, ...); see ``.env.example``.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from gitlab_core.env import env_bool, env_int, env_list, env_networks, env_seconds_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
# Off unless asked for: the debug page shows settings, source and local variables to anyone.
DEBUG = env_bool("DEBUG", False)
# SECRET_KEY, else the key scripts/run.sh keeps in VAR_DIR/secret_key (so that manage.py
# on the same installation signs with it too), else the development key.
SECRET_KEY_FILE = VAR_DIR / "secret_key"
SECRET_KEY = env_str("SECRET_KEY") or (SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else "")
SECRET_KEY = SECRET_KEY or DEV_SECRET_KEY
# 50: what `manage.py check --deploy` asks of a key.
if not DEBUG and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50):
    raise ImproperlyConfigured(
        "SECRET_KEY must be set to a random value of at least 50 characters when DEBUG is off "
        "(the development key is refused; scripts/run.sh writes one to VAR_DIR/secret_key)."
    )

# The source revision this installation runs (a commit id), shown by GET /version.
APP_REVISION = env_str("APP_REVISION", "unknown")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
# Under /api/v4 a CSRF failure is answered in JSON (the admin keeps Django's page).
CSRF_FAILURE_VIEW = "gitlab_core.api.errors.csrf_failure"
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
# The proxies in front of the service (addresses or CIDR ranges): only from them is
# X-Forwarded-For believed, for the client address of bans, lockouts, caches and logs
# (gitlab_core/client_address.py). Empty: the peer is the client.
TRUSTED_PROXIES = env_networks("TRUSTED_PROXIES")
# Who may read /-/metrics: addresses or CIDR ranges, matched against the client address
# above (the peer, or X-Forwarded-For's client behind TRUSTED_PROXIES). Others get 403.
MONITORING_ALLOWED_IPS = env_networks("MONITORING_ALLOWED_IPS", ["127.0.0.1", "::1"])
# Each process writes its Prometheus counts here (one file per process and kind) and
# /-/metrics adds them up; one directory per host, shared by the web server and the
# workers (gitlab_core/metrics.py).
PROMETHEUS_MULTIPROC_DIR = Path(env_str("PROMETHEUS_MULTIPROC_DIR") or VAR_DIR / "metrics")
PROMETHEUS_MULTIPROC_DIR.mkdir(parents=True, exist_ok=True)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- HTTPS: every setting `manage.py check --deploy` asks for, under its Django name --------
# Off by default so that scripts/run.sh serves plain http://127.0.0.1; the README lists the
# production values. The two WSGI doors (/jwt/auth, the event receiver) are not redirected:
# the registry may call them over an internal network.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# Load balancers probe the health check over plain HTTP.
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", [r"^-/health$"])
# /-/liveness, /-/readiness and /-/metrics are bare WSGI doors (gitlab_core/wsgi.py):
# answered over plain HTTP and whatever the Host header, so that probes may use an IP.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "gitlab_core",
    "projects",
    "container_registry",
    "jwt_auth",
    "workers",
]

MIDDLEWARE = [
    # First, so that every log line of the request carries its id (gitlab_core/request_id.py).
    "gitlab_core.request_id.RequestIdMiddleware",
    "projects.middleware.RawPathMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from STATIC_ROOT (collectstatic) under gunicorn.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # The author and client address of the audit events a request records.
    "gitlab_core.audit.AuditContextMiddleware",
]

ROOT_URLCONF = "gitlab_core.urls"
WSGI_APPLICATION = "gitlab_core.wsgi.application"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "gitlab_core" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database_from_url(url: str, conn_max_age: int) -> dict:
    # Only SQLite and PostgreSQL drivers are installed; the URL is not echoed (it may hold a password).
    if url.split("://", 1)[0] not in ("sqlite", "postgres", "postgresql", "pgsql"):
        raise ImproperlyConfigured("DATABASE_URL must start with sqlite:// or postgres://")
    try:
        return dj_database_url.parse(url, conn_max_age=conn_max_age)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL ({type(exc).__name__})") from None


DATABASES = {
    "default": _database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process, the worker and beat share one SQLite file. A transaction
    # takes the write lock when it begins (IMMEDIATE): one that read first and then wrote
    # while another process was writing got "database is locked" at once instead of
    # waiting its turn (SQLite refuses that upgrade to avoid a deadlock).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        }
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file (not in-memory) test database, so that a real Celery worker, gunicorn or the
    # registry's notifications reach the same data as the test process.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
# The statements on a request path (gitlab_core/db.py) run as prepared statements on
# PostgreSQL: psycopg prepares them once per connection (Django's own cursors bind on the
# client and are never prepared). Switch off behind a transaction-mode pooler without
# prepared-statement support (PgBouncer before 1.21).
HOT_QUERIES_PREPARED = env_bool("HOT_QUERIES_PREPARED", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["prepare_threshold"] = 5 if HOT_QUERIES_PREPARED else None
    if HOT_QUERIES_PREPARED:
        # Only those statements are prepared. PostgreSQL would plan the realm's lookup
        # anew on each run (its custom plan looks cheaper than the generic one for an
        # array parameter), costing 0.5 ms of its CPU per request instead of 0.15 ms;
        # the generic plan uses the same indexes.
        _options["options"] = f"{_options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()

# --- PostgreSQL timeouts: a stalled database answers 503 instead of holding a thread ------
# Seconds to open a connection, in every process (libpq's minimum is 2). Statements are
# cancelled after DATABASE_STATEMENT_TIMEOUT seconds; 0 (the default) never cancels them.
# scripts/web.sh sets it for the web server only (WEB_STATEMENT_TIMEOUT, default 30):
# workers, beat and manage.py (migrations, maintenance commands) keep no statement
# timeout, since Celery's time limits bound the tasks and a migration must not be cut.
DATABASE_CONNECT_TIMEOUT = env_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=2)
DATABASE_STATEMENT_TIMEOUT = env_int("DATABASE_STATEMENT_TIMEOUT", 0, minimum=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    _pg_options = DATABASES["default"]["OPTIONS"]
    _pg_options.setdefault("connect_timeout", DATABASE_CONNECT_TIMEOUT)
    if DATABASE_STATEMENT_TIMEOUT:
        _timeout = f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT * 1000}"
        _pg_options["options"] = f"{_pg_options.get('options', '')} {_timeout}".strip()

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "gitlab_core.User"

CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://")):
    raise ImproperlyConfigured("CACHE_URL must be empty (database cache) or a redis:// URL")
if CACHE_URL.startswith("redis"):
    CACHES = {
        "default": {
            # Django's, keeping its Redis client instead of building one per call.
            "BACKEND": "gitlab_core.redis_cache.RedisCache",
            "LOCATION": CACHE_URL,
            # A Redis that stops answering must fail a call, not hang a request.
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    # A database cache is shared by every process on the embedded default (web, worker).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "gitlab_cache",
            # Django's default of 300 entries is less than the tag creation times of one
            # large repository, and a full cache culls a third of itself at a time.
            "OPTIONS": {"MAX_ENTRIES": 200_000, "CULL_FREQUENCY": 10},
        }
    }

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns at start-up when it is missing
LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    # A personal access token first; a CI job token (JOB-TOKEN, job_token) otherwise.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gitlab_core.api.authentication.TokenAuthentication",
        "projects.api.authentication.JobTokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "gitlab_core.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": [],
}

# --- Container registry -------------------------------------------------------------
REGISTRY_API_URL = env_str("REGISTRY_API_URL", "http://localhost:5000")
REGISTRY_HOST_PORT = env_str("REGISTRY_HOST_PORT", "localhost:5000")
REGISTRY_ISSUER = env_str("REGISTRY_ISSUER", "gitlab-issuer")
REGISTRY_SERVICE = "container_registry"
# The first key signs; further keys (comma-separated) stay trusted for rotation.
REGISTRY_KEY_PATH = env_str("REGISTRY_KEY_PATH", str(VAR_DIR / "registry.key"))
REGISTRY_EXTRA_KEY_PATHS = env_list("REGISTRY_EXTRA_KEY_PATHS", [])
# The signing key's certificate (the registry's rootcertbundle); empty: the key path with ".crt".
REGISTRY_CERT_PATH = env_str("REGISTRY_CERT_PATH", "") or None
# GitLab's registry "enabled" switch: off, /jwt/auth answers 404 UNAVAILABLE.
REGISTRY_ENABLED = env_bool("REGISTRY_ENABLED", True)
REGISTRY_NOTIFICATION_SECRET = env_str("REGISTRY_NOTIFICATION_SECRET", "")
REGISTRY_REQUEST_TIMEOUT = env_int("REGISTRY_REQUEST_TIMEOUT", 15, minimum=1)
# The registry program `registry_garbage_collect` runs; empty: `registry` or
# `docker-registry` on PATH.
REGISTRY_BINARY = env_str("REGISTRY_BINARY", "")
# Recorded event ids (de-duplication of re-sent notifications) are deleted after this
# many days, daily; 0 keeps them. The registry re-sends an event only while its delivery
# keeps failing, so this must exceed the longest outage of the receiver you expect.
REGISTRY_EVENT_RETENTION_DAYS = env_int("REGISTRY_EVENT_RETENTION_DAYS", 14, minimum=0)
# A project's registry size is measured again this many seconds after the first event
# that changed it; the events of the same burst wait for that one measurement.
REGISTRY_SIZE_REFRESH_DELAY_SECONDS = env_int("REGISTRY_SIZE_REFRESH_DELAY_SECONDS", 60, minimum=10)

# Failed-authentication ban for /jwt/auth (GitLab's packaged defaults).
AUTH_BAN_ENABLED = env_bool("AUTH_BAN_ENABLED", True)
AUTH_BAN_MAX_RETRY = env_int("AUTH_BAN_MAX_RETRY", 30, minimum=1)
AUTH_BAN_FIND_TIME = env_int("AUTH_BAN_FIND_TIME", 180, minimum=1)
AUTH_BAN_TIME = env_int("AUTH_BAN_TIME", 3600, minimum=1)
AUTH_BAN_IP_ALLOWLIST = env_networks("AUTH_BAN_IP_ALLOWLIST")
# Admin sign-in lockout per (client address, user), GitLab's numbers: 10 failures lock
# the sign-in for 10 minutes, the right password included.
ADMIN_LOCKOUT_ENABLED = env_bool("ADMIN_LOCKOUT_ENABLED", True)
ADMIN_LOCKOUT_MAX_FAILURES = env_int("ADMIN_LOCKOUT_MAX_FAILURES", 10, minimum=1)
ADMIN_LOCKOUT_FIND_TIME = env_int("ADMIN_LOCKOUT_FIND_TIME", 600, minimum=1)
ADMIN_LOCKOUT_TIME = env_int("ADMIN_LOCKOUT_TIME", 600, minimum=1)

# Password logins to /jwt/auth (GitLab: "password authentication for Git").
PASSWORD_AUTHENTICATION_ENABLED_FOR_GIT = env_bool("PASSWORD_AUTHENTICATION_ENABLED_FOR_GIT", True)

# /jwt/auth hot path. Per-process caches (seconds): the token duration setting, which
# container repository rows exist, and the decision of a successful request, reused for
# an identical request (same credentials, scopes and client) within that window; 0
# turns it off (jwt_auth/decisions.py says what it costs).
REALM_DECISION_CACHE_SECONDS = env_int("REALM_DECISION_CACHE_SECONDS", 1, minimum=0)
REGISTRY_SETTINGS_CACHE_SECONDS = env_int("REGISTRY_SETTINGS_CACHE_SECONDS", 5, minimum=0)
REGISTRY_REPOSITORY_CACHE_SECONDS = env_int("REGISTRY_REPOSITORY_CACHE_SECONDS", 60, minimum=0)

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.split("://", 1)[0] not in ("filesystem", "redis", "rediss", "memory"):
    raise ImproperlyConfigured("CELERY_BROKER_URL must be filesystem://, redis://, rediss:// or memory://")
if CELERY_BROKER_URL == "filesystem://":
    _broker_dir = VAR_DIR / "broker"
    for sub in ("out", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "data_folder_processed": str(_broker_dir / "processed"),
        # kombu otherwise creates "control/" in the working directory for worker pidboxes.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 1800, minimum=1)
CELERY_TASK_TIME_LIMIT = CELERY_TASK_SOFT_TIME_LIMIT + 60
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TIMEZONE = "UTC"
# Webhooks: how long a delivery may take, and the delays (seconds) of the retries of a
# failed delivery (each failure also counts towards disabling the hook).
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
WEBHOOK_RETRY_DELAYS = env_seconds_list("WEBHOOK_RETRY_DELAYS", [60, 600, 3600])
# The one beat schedule. Each entry says why it runs when it does.
CELERY_BEAT_SCHEDULE = {
    # GitLab runs ContainerExpirationPolicyWorker hourly at minute 50.
    "cleanup-policy-scheduler": {
        "task": "container_registry.schedule_cleanup_policies",
        "schedule": crontab(minute=env_str("CLEANUP_POLICY_CRON_MINUTE", "50")),
    },
    # GitLab's ContainerRegistry::CleanupWorker: every 5 minutes, reset stale deletions
    # and launch due repository deletions.
    "repository-deletion-scheduler": {
        "task": "container_registry.schedule_repository_deletions",
        "schedule": crontab(minute=env_str("DELETION_CRON_MINUTE", "*/5")),
    },
    # Registry sizes still stale whose refresh was lost (a broker outage), every 30 minutes.
    "registry-size-sweep": {
        "task": "container_registry.refresh_stale_registry_sizes",
        "schedule": crontab(minute="*/30"),
    },
    # Recorded event ids past REGISTRY_EVENT_RETENTION_DAYS, daily at a quiet hour.
    "registry-event-pruning": {
        "task": "container_registry.prune_registry_events",
        "schedule": crontab(minute="17", hour=env_str("EVENT_PRUNING_CRON_HOUR", "3")),
    },
    # Refresh tokens past their date are refused already; removing them keeps the
    # table small. Daily, at the same quiet hour.
    "refresh-token-pruning": {
        "task": "jwt_auth.prune_refresh_tokens",
        "schedule": crontab(minute="27", hour=env_str("EVENT_PRUNING_CRON_HOUR", "3")),
    },
}

# Error pages (DEBUG) and reports hide connection strings and tokens too (gitlab_core/error_reports.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "gitlab_core.error_reports.ReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "gitlab_core.error_reports.Reporter"

# --- Logging: one JSON object per line ---------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# Installs the redaction of secrets in every record before applying LOGGING.
LOGGING_CONFIG = "gitlab_core.logging.configure"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "gitlab_core.logging.JsonFormatter"}},
    "filters": {
        "client_address": {"()": "gitlab_core.client_address.RequestClientAddress"},
        "request_id": {"()": "gitlab_core.request_id.RequestIdFilter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["client_address", "request_id"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.server": {"level": "WARNING"}},
}
