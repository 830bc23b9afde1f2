#!/usr/bin/env bash
# Set up and start the whole service on the embedded defaults: the web server (granian,
# scripts/web.sh: web, admin, API, token realm, event receiver), one Celery worker and
# Celery beat. Ctrl-C stops all three.
#   PORT (default 8000), WEB_HOST (default 127.0.0.1), PYTHON (default python3)
#   DJANGO_SUPERUSER_USERNAME / _EMAIL / _PASSWORD: create this administrator if missing.
#   SECRET_KEY: unset, a random key is made once and kept in $VAR_DIR/secret_key (mode 0600),
#     which the settings read (manage.py included).
# DEBUG stays off (the settings' default) unless DEBUG=true is set.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export PORT="${PORT:-8000}"
export WEB_HOST="${WEB_HOST:-127.0.0.1}"
export DJANGO_SETTINGS_MODULE=gitlab_core.settings
PYTHON="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    "$PYTHON" -m venv .venv
fi
echo "==> installing Python packages (runtime only: requirements.txt)"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
py=.venv/bin/python

# The settings read this file when SECRET_KEY is not set (manage.py too).
secret_file="${VAR_DIR:-var}/secret_key"
if [ -z "${SECRET_KEY:-}" ] && [ ! -s "$secret_file" ]; then
    echo "==> writing a random SECRET_KEY to $secret_file"
    mkdir -p "$(dirname "$secret_file")"
    # umask: readable by its owner only; mv: never read half-written.
    (umask 077 && $py -c 'import secrets; print(secrets.token_urlsafe(64))' >"$secret_file.tmp")
    mv "$secret_file.tmp" "$secret_file"
fi

echo "==> migrating the database"
$py manage.py migrate --noinput
$py manage.py collectstatic --noinput --verbosity 0

key="${REGISTRY_KEY_PATH:-${VAR_DIR:-var}/registry.key}"
key="${key%%,*}"
if [ ! -f "$key" ]; then
    cert="${key%.key}.crt"
    echo "==> writing the registry signing key $key and certificate $cert"
    mkdir -p "$(dirname "$key")"
    $py manage.py registry_keys --key "$key" --cert "$cert" >/dev/null
fi

if [ -n "${DJANGO_SUPERUSER_USERNAME:-}" ]; then
    if $py manage.py shell -c 'import os, sys
from gitlab_core.models import User
sys.exit(0 if User.objects.filter(username__iexact=os.environ["DJANGO_SUPERUSER_USERNAME"]).exists() else 1)'; then
        echo "==> administrator $DJANGO_SUPERUSER_USERNAME exists"
    else
        echo "==> creating administrator $DJANGO_SUPERUSER_USERNAME"
        $py manage.py createsuperuser --noinput
    fi
fi

# The registry's vendor, version and features for the application settings; the service
# starts without it when the registry is not up yet (run the command again later).
if ! $py manage.py registry_identity >/dev/null 2>&1; then
    echo "==> registry at ${REGISTRY_API_URL:-http://localhost:5000} not reachable yet: its identity is not recorded"
fi

pids=()
stop() {
    trap - INT TERM
    echo "==> stopping"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

scripts/web.sh &
pids+=($!)
.venv/bin/celery --app gitlab_core worker --loglevel INFO --concurrency "${WORKER_CONCURRENCY:-2}" &
pids+=($!)
.venv/bin/celery --app gitlab_core beat --loglevel INFO &
pids+=($!)
echo "==> web on http://$WEB_HOST:$PORT/ (admin: /admin/, probes: /-/liveness, /-/readiness, metrics: /-/metrics); Ctrl-C stops"

# One process ending (a crash, a bad port) stops the others too.
set +e
wait -n "${pids[@]}"
status=$?
stop
exit "$status"
