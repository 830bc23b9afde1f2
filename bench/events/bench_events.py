"""Benchmark of the registry event receiver under its production server.

Posts real envelopes (the captured manifest push of distribution 2.8, one event each,
a fresh event id per request, as the registry sends them) to
``/api/v4/container_registry_event/events`` served by gunicorn on PostgreSQL, and in the
same run measures the raw rate of single-row INSERT+COMMIT through psycopg on the same
database with the same concurrency. Reports events per second, the ratio to the raw
rate, latency percentiles, and p99 at a fixed offered rate (default 500 events/s).
Finally checks that every acknowledged event was applied exactly once.

    python bench/events/bench_events.py --database-url postgres://user@host:5432/db

The database is migrated and gets a ``bench/app`` project; use a throwaway database.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parents[2]
ENVELOPE = ROOT / "container_registry" / "tests" / "fixtures" / "registry-2.8" / "push-manifest-oci.json"
EVENTS_PATH = "/api/v4/container_registry_event/events"
CONTENT_TYPE = "application/vnd.docker.distribution.events.v1+json"
SEED = """
from tests_support.factories import make_group, make_project
from projects.models import Namespace
if not Namespace.objects.filter(full_path_lower="bench").exists():
    make_project(make_group("bench"), "app")
"""
COUNT = """
from container_registry.models import ContainerRepository
from django.db.models import Sum
print(ContainerRepository.objects.filter(project__full_path_lower="bench/app").aggregate(n=Sum("push_count"))["n"] or 0)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout


def raw_insert_rate(database_url: str, clients: int, duration: float) -> float:
    """Single-row INSERT + COMMIT per operation, ``clients`` connections in parallel."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_insert")
        conn.execute("CREATE TABLE bench_raw_insert (id bigserial PRIMARY KEY, event_id varchar(255) UNIQUE)")
    counts = [0] * clients
    deadline = time.monotonic() + duration

    def work(index: int) -> None:
        with psycopg.connect(database_url) as conn:
            while time.monotonic() < deadline:
                conn.execute("INSERT INTO bench_raw_insert (event_id) VALUES (%s)", (uuid.uuid4().hex,))
                conn.commit()
                counts[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_raw_insert")
    return sum(counts) / elapsed


class Poster:
    def __init__(self, url: str, secret: str, repositories: int):
        self.url = url
        self.secret = secret
        self.template = json.loads(ENVELOPE.read_bytes())
        self.repositories = repositories
        self.sent = 0
        self.local = threading.local()
        self.ok = 0
        self.failed = 0
        self.lock = threading.Lock()

    def post(self) -> float:
        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        envelope = json.loads(json.dumps(self.template))
        envelope["events"][0]["id"] = str(uuid.uuid4())
        with self.lock:
            self.sent += 1
            image = self.sent % self.repositories
        envelope["events"][0]["target"]["repository"] = f"bench/app/image{image}"
        body = json.dumps(envelope, indent=3).encode()
        started = time.perf_counter()
        response = session.post(
            self.url, data=body, headers={"Authorization": self.secret, "Content-Type": CONTENT_TYPE}, timeout=10
        )
        latency = time.perf_counter() - started
        with self.lock:
            if response.status_code == 200:
                self.ok += 1
            else:
                self.failed += 1
        return latency


def closed_loop(poster: Poster, clients: int, duration: float) -> tuple[float, list[float]]:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    deadline = time.monotonic() + duration

    def work(index: int) -> None:
        while time.monotonic() < deadline:
            latencies[index].append(poster.post())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = [x for chunk in latencies for x in chunk]
    return len(flat) / elapsed, flat


def open_loop(poster: Poster, rate: float, duration: float, clients: int) -> tuple[float, list[float]]:
    """Offer ``rate`` events per second on a fixed schedule; latency counts from the
    scheduled send time, so queueing behind a slow server shows."""
    total = int(rate * duration)
    start = time.perf_counter() + 0.2
    slots = iter(range(total))
    slot_lock = threading.Lock()
    latencies: list[float] = []
    result_lock = threading.Lock()

    def work() -> None:
        while True:
            with slot_lock:
                slot = next(slots, None)
            if slot is None:
                return
            due = start + slot / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            poster.post()
            with result_lock:
                latencies.append(time.perf_counter() - due)

    threads = [threading.Thread(target=work) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return len(latencies) / elapsed, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent senders (and raw-insert connections)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument("--rate", type=float, default=500.0, help="offered events/s for the latency run")
    parser.add_argument(
        "--repositories", type=int, default=100, help="images the events are spread over (1 = one hot row)"
    )
    args = parser.parse_args()
    if not args.database_url.startswith("postgres"):
        parser.error("--database-url (or DATABASE_URL) must be a PostgreSQL URL")

    secret = secrets.token_urlsafe(24)
    var_dir = tempfile.mkdtemp(prefix="bench-events-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(
        DATABASE_URL=args.database_url,
        VAR_DIR=var_dir,
        REGISTRY_NOTIFICATION_SECRET=secret,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        # Nothing listens here: a push to a repository without a row is then trusted at
        # once instead of verified (the row is created on the first event).
        REGISTRY_API_URL=f"http://127.0.0.1:{free_port()}",
    )
    manage(env, "migrate", "--noinput")
    manage(env, "shell", "-c", SEED)
    before = int(manage(env, "shell", "-c", COUNT).split()[-1])

    port = free_port()
    gunicorn = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "gitlab_core.wsgi",
            f"--workers={args.workers}",
            f"--bind=127.0.0.1:{port}",
            "--log-level=warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        for _ in range(100):
            try:
                requests.get(url, timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.1)
        poster = Poster(url, secret, args.repositories)
        for _ in range(args.repositories + 50):  # warm-up: connections, the repository rows
            poster.post()

        raw = raw_insert_rate(args.database_url, args.clients, args.duration)
        rate, latencies = closed_loop(poster, args.clients, args.duration)
        offered_rate, offered_latencies = open_loop(poster, args.rate, args.duration, max(args.clients, 32))
    finally:
        gunicorn.terminate()
        gunicorn.wait(timeout=10)

    after = int(manage(env, "shell", "-c", COUNT).split()[-1])
    applied = after - before
    ms = 1000.0
    print(
        f"gunicorn workers: {args.workers}, concurrent clients: {args.clients}, "
        f"{args.repositories} repositories, {args.duration:.0f} s per run"
    )
    print(f"raw psycopg INSERT+COMMIT: {raw:,.0f}/s")
    print(
        f"events (closed loop): {rate:,.0f}/s, ratio {rate / raw:.2f}, p50 {statistics.median(latencies) * ms:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * ms:.1f} ms"
    )
    print(
        f"events at {args.rate:.0f}/s offered: achieved {offered_rate:,.0f}/s, "
        f"p50 {statistics.median(offered_latencies) * ms:.1f} ms, p99 {percentile(offered_latencies, 0.99) * ms:.1f} ms"
    )
    print(
        f"acknowledged {poster.ok}, refused {poster.failed}, applied {applied} (exactly once: {applied == poster.ok})"
    )


if __name__ == "__main__":
    main()
