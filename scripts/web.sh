#!/usr/bin/env bash
# The production web server: granian (Rust HTTP server, WSGI interface) serving
# gitlab_core.wsgi:application (or the WSGI target given as the first argument).
#   WEB_HOST (default 127.0.0.1), PORT (default 8000)
#   WEB_CONCURRENCY: processes (default: one per CPU; the token realm is CPU-bound, and
#     one process runs Python on one core at a time: one process of 4 threads gave the
#     realm 0.65-0.71 of what two gave, docs/performance.md)
#   WEB_THREADS: request threads per process (default 4; the event receiver spends most
#     of a request waiting for PostgreSQL's commit)
#   WEB_ACCESS_LOG: true (default) or false (a proxy in front usually logs requests)
#   The access log names the client by TRUSTED_PROXIES and X-Forwarded-For, which granian
#   reads for gitlab_core.client_address.AccessLogClientAddress (granian-logging.json).
#   PROMETHEUS_MULTIPROC_DIR: where every process writes its metrics for /-/metrics
#     (default VAR_DIR/metrics; shared with the Celery worker on the same host)
#   WEB_STATEMENT_TIMEOUT: seconds after which PostgreSQL cancels a web request's
#     statement and the request answers 503 (default 30; 0: never). Set here, for the web
#     server only: workers, beat and migrations run without a statement timeout.
# Run from anywhere; expects the virtualenv of scripts/run.sh in .venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export DATABASE_STATEMENT_TIMEOUT="${WEB_STATEMENT_TIMEOUT:-30}"

# Prometheus counts of processes that are gone (PROMETHEUS_MULTIPROC_DIR, default
# VAR_DIR/metrics) are removed before the workers start; a running Celery worker's stay.
DJANGO_SETTINGS_MODULE="${DJANGO_SETTINGS_MODULE:-gitlab_core.settings}" .venv/bin/python -m gitlab_core.metrics_files

access=(--access-log --access-log-fmt '%(addr)s %(method)s %(path)s %(status)d %(dt_ms).3f %(header{x-forwarded-for})s')

case "${WEB_ACCESS_LOG:-true}" in
    false | 0 | no | off) access=(--no-access-log) ;;
esac
exec .venv/bin/granian \
    --interface wsgi \
    --host "${WEB_HOST:-127.0.0.1}" \
    --port "${PORT:-8000}" \
    --workers "${WEB_CONCURRENCY:-$(nproc)}" \
    --blocking-threads "${WEB_THREADS:-4}" \
    --no-ws \
    --respawn-failed-workers \
    --workers-kill-timeout 20 \
    --log-level "$(echo "${LOG_LEVEL:-info}" | tr '[:upper:]' '[:lower:]')" \
    --log-config gitlab_core/granian-logging.json \
    "${access[@]}" \
    "${1:-gitlab_core.wsgi:application}"
