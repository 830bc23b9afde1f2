#!/usr/bin/env bash
# Set up and run the whole test suite, as CI does:
#   1. system tools (when root and missing): PostgreSQL, Redis, the registry, skopeo,
#      umoci, chromium -- installed under a policy-rc.d that keeps their services stopped;
#   2. .venv with requirements-dev.txt (the runtime plus tests and tooling);
#   3. pre-commit run --all-files: ruff check, ruff format --check, makemigrations --check
#      (.pre-commit-config.yaml, the same hooks a developer's `pre-commit install` runs);
#   4. pytest on the embedded defaults (SQLite, filesystem broker);
#   5. pytest again on a private PostgreSQL and Redis started here on free ports.
# Extra arguments go to both pytest runs (e.g. scripts/test.sh -x -k admin).
# SKIP_LINT=1 skips step 3 (a local shortcut; CI always lints).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
APT_PACKAGES=(postgresql redis-server docker-registry skopeo umoci chromium)

log() { echo "==> $*"; }

install_system_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        # "install ok installed" only: a removed package keeps a dpkg entry for its
        # configuration files, and `dpkg -s` still succeeds for it.
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
        log "not root (or no apt-get): not installing ${missing[*]}; tests needing them are skipped"
        return 0
    fi
    log "installing ${missing[*]}"
    # Debian starts a package's service on install; the tests start their own instances.
    local policy=/usr/sbin/policy-rc.d backup=""
    if [ -e "$policy" ]; then backup="$(mktemp)"; cp -p "$policy" "$backup"; fi
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    } || rc=$?
    if [ -n "$backup" ]; then mv "$backup" "$policy"; else rm -f "$policy"; fi
    return "$rc"
}

setup_python() {
    if [ ! -x .venv/bin/python ]; then
        log "creating .venv"
        "$PYTHON" -m venv .venv
    fi
    log "installing Python packages"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
}

lint() {
    # The hooks are local (language: system) and run .venv's tools: nothing is fetched.
    log "pre-commit run --all-files (ruff check, ruff format --check, makemigrations --check)"
    .venv/bin/pre-commit run --all-files
}

run_pytest() {
    local rc=0
    .venv/bin/pytest -p no:cacheprovider "$@" || rc=$?
    # 5 = no tests collected (e.g. a -k that matches nothing): not a failure.
    if [ "$rc" -eq 5 ]; then rc=0; fi
    return "$rc"
}

SERVICES_DIR=""
PG_BIN=""
as_service_user() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

stop_services() {
    [ -n "$SERVICES_DIR" ] || return 0
    if [ -f "$SERVICES_DIR/pg/postmaster.pid" ]; then
        as_service_user "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ -f "$SERVICES_DIR/redis.pid" ]; then
        kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true
    fi
    rm -rf "$SERVICES_DIR"
    SERVICES_DIR=""
}
trap stop_services EXIT

free_port() {
    .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_services() {
    # The server's bin directory (the client package has one too, without initdb).
    PG_BIN="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)" 2>/dev/null || true)"
    if [ -z "$PG_BIN" ] || [ "$PG_BIN" = . ] || ! command -v redis-server >/dev/null; then
        echo "PostgreSQL or redis-server is not installed; cannot run the PostgreSQL pass" >&2
        return 1
    fi
    SERVICES_DIR="$(mktemp -d)"
    chmod 755 "$SERVICES_DIR"
    mkdir "$SERVICES_DIR/pg"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$SERVICES_DIR/pg"; fi
    local pg_port redis_port
    pg_port="$(free_port)"
    redis_port="$(free_port)"
    log "starting PostgreSQL on 127.0.0.1:$pg_port"
    as_service_user "$PG_BIN/initdb" -D "$SERVICES_DIR/pg" -U postgres -A trust --no-sync >/dev/null
    # A throwaway database: durability settings off for speed.
    as_service_user "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg" -l "$SERVICES_DIR/pg/server.log" -w -o \
        "-p $pg_port -c listen_addresses=127.0.0.1 -c unix_socket_directories='$SERVICES_DIR/pg' -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null
    as_service_user "$PG_BIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres registry
    log "starting Redis on 127.0.0.1:$redis_port"
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
        --dir "$SERVICES_DIR" --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log"
    local i
    for i in $(seq 1 50); do
        redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/registry"
    export CELERY_BROKER_URL="redis://127.0.0.1:$redis_port/0"
    export CACHE_URL="redis://127.0.0.1:$redis_port/1"
}

install_system_packages
setup_python
# Only what the suite sets itself: a developer's shell must not redirect the SQLite pass.
unset DATABASE_URL CELERY_BROKER_URL CACHE_URL
# SKIP_LINT=1 is a local shortcut while iterating on tests; CI always lints.
if [ "${SKIP_LINT:-0}" != 1 ]; then lint; fi

log "pytest on SQLite"
run_pytest "$@"

start_services
log "pytest on PostgreSQL and Redis"
run_pytest "$@"
stop_services
log "all passed"
