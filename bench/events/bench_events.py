"""Benchmark of the registry event receiver under its production server.

Posts real envelopes (the captured distribution 2.8 manifest push, one event each, a
fresh event id per request, pretty-printed as the registry sends them) to
``/api/v4/container_registry_event/events`` served on PostgreSQL by the production server
(granian, ``scripts/web.sh``) and, for comparison, gunicorn, for each server
configuration given, in ``--rounds`` interleaved rounds after an untimed warm-up:

* throughput: ``wrk`` (closed loop, ``--connections`` connections) with
  ``bench/events/events.lua``; right before it, in the same run, two references on the
  same database: the raw rate of single-row INSERT+COMMIT through psycopg on ONE
  connection (the headline ratio: events per second over that rate), and on as many
  connections as wrk has (a stricter second line: parallel commits share a WAL flush);
* latency at half the rate wrk just reached (or ``--rate`` events/s): an open-loop
  sender (``open_loop.py``) that measures each request from its scheduled send time;
* the 1-minute load average before and after each phase (the machine may be shared).

It ends by re-sending envelopes already acknowledged (nothing may change) and checking
that every recorded event id was counted exactly once.

    python bench/events/bench_events.py [--database-url postgres://USER@HOST:PORT/DB]
        [--servers granian:2x4,sync:4] [--rounds 3] [--connections 8] [--duration 10] [--rate N]
        [--tree DIR [--tree DIR2]]

``--tree`` (repeatable; default: this checkout) serves the code of another checkout
(with its own ``.venv`` and ``scripts/web.sh``) against the same database: each round
measures every tree with every server configuration, in the order given, and the
report compares the trees. The newest tree (whose migrations include the others')
migrates and seeds.

Without ``--database-url`` a throwaway PostgreSQL cluster is started (``initdb``, needs
root for ``runuser -u postgres``); with it, use a throwaway database: it is migrated and
gets a ``bench/app`` project.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
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

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import trees as tree_tools  # noqa: E402
from open_loop import open_loop  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "container_registry" / "tests" / "fixtures" / "registry-2.8" / "push-manifest-oci.json"
LUA = Path(__file__).resolve().parent / "events.lua"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
EVENTS_PATH = "/api/v4/container_registry_event/events"
CONTENT_TYPE = "application/vnd.docker.distribution.events.v1+json"
IMAGE_PREFIX = "bench/app/image"
SEED = """
from tests_support.factories import make_group, make_project
from projects.models import Namespace
if not Namespace.objects.filter(full_path_lower="bench").exists():
    make_project(make_group("bench"), "app")
"""
COUNTS = """
from django.db.models import Sum
from container_registry.models import ContainerRepository, RegistryEvent
pushes = ContainerRepository.objects.filter(project__full_path_lower="bench/app").aggregate(n=Sum("push_count"))["n"]
print(pushes or 0, RegistryEvent.objects.filter(repository__startswith="bench/app/").count())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def tree_cpu_seconds(root: int | None) -> float:
    """CPU time used so far by a process and its descendants (reaped children included)."""
    if root is None:
        return 0.0
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            # ppid, utime + stime + cutime + cstime (in clock ticks)
            stats[int(entry)] = (int(fields[1]), sum(int(f) for f in fields[11:15]))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += [child for child, (parent, _ticks) in stats.items() if parent == pid]
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def manage(env: dict, *args: str, tree: Path = ROOT) -> str:
    result = subprocess.run(
        [tree_tools.python(tree), str(tree / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    )
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""


def start_postgres(work: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway cluster on a free port, fsync on (as in production)."""
    data = work / "pg"
    data.mkdir()
    shutil.chown(work, "postgres")
    shutil.chown(data, "postgres")
    as_pg = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust"], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(
        [*as_pg, str(PG_BIN / "postgres"), "-D", str(data), "-p", str(port), "-k", str(data)]
        + ["-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"postgres://postgres@127.0.0.1:{port}/postgres"
    for _ in range(100):
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE DATABASE bench")
            break
        except psycopg.OperationalError:
            time.sleep(0.2)
    return proc, f"postgres://postgres@127.0.0.1:{port}/bench"


def start_redis(work: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway Redis for Django's cache, as in production (``CACHE_URL``)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        + ["--dir", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/1"


def raw_insert_rate(database_url: str, connections: int, duration: float) -> float:
    """Single-row INSERT + COMMIT per operation, ``connections`` in parallel."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_insert")
        conn.execute("CREATE TABLE bench_raw_insert (id bigserial PRIMARY KEY, event_id varchar(255) UNIQUE)")
    counts = [0] * connections
    deadline = time.monotonic() + duration

    def work(index: int) -> None:
        with psycopg.connect(database_url) as conn:
            while time.monotonic() < deadline:
                conn.execute("INSERT INTO bench_raw_insert (event_id) VALUES (%s)", (uuid.uuid4().hex,))
                conn.commit()
                counts[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(connections)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE bench_raw_insert")
    return sum(counts) / elapsed


def envelope(event_id: str, repository: str) -> bytes:
    document = json.loads(FIXTURE.read_bytes())
    document["events"][0]["id"] = event_id
    target = document["events"][0]["target"]
    target["url"] = target["url"].replace(target["repository"], repository)
    target["repository"] = repository
    return json.dumps(document, indent=3).encode()


def http_request(port: int, secret: str, body: bytes) -> bytes:
    head = (
        f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: Go-http-client/1.1\r\n"
        f"Content-Length: {len(body)}\r\nAuthorization: {secret}\r\nContent-Type: {CONTENT_TYPE}\r\n\r\n"
    )
    return head.encode() + body


def start_server(env: dict, server: str, tree: Path = ROOT) -> tuple[subprocess.Popen, int]:
    """``granian:NxT`` (the production server, ``scripts/web.sh``: N processes of T
    threads, access log off), or gunicorn: ``sync:N`` (N processes) or ``gthread:NxT``;
    the code, ``scripts/web.sh`` and ``.venv`` of ``tree``."""
    kind, _, size = server.partition(":")
    port = free_port()
    server_env = {**env, "PYTHONPATH": str(tree)}
    gunicorn = str(tree / ".venv" / "bin" / "gunicorn")
    if kind == "granian":
        workers, _, threads = size.partition("x")
        args = [str(tree / "scripts" / "web.sh")]
        server_env.update(PORT=str(port), WEB_CONCURRENCY=workers, WEB_THREADS=threads or "4")
        server_env["WEB_ACCESS_LOG"] = "false"
    elif kind == "sync":
        args = [gunicorn, "gitlab_core.wsgi", f"--bind=127.0.0.1:{port}", "--log-level=warning", f"--workers={size}"]
    elif kind == "gthread":
        workers, threads = size.split("x")
        args = [gunicorn, "gitlab_core.wsgi", f"--bind=127.0.0.1:{port}", "--log-level=warning"]
        args += ["--worker-class=gthread", f"--workers={workers}", f"--threads={threads}"]
    else:
        raise SystemExit(f"unknown server {server!r}: use granian:NxT, sync:N or gthread:NxT")
    # The warm-up's first pushes log a warning each (the registry is not running).
    log = open(Path(env["VAR_DIR"]) / f"server-{port}.log", "wb")  # noqa: SIM115 (closed with the process)
    proc = subprocess.Popen(args, cwd=tree, env=server_env, stdout=log, stderr=log, start_new_session=True)
    for _ in range(200):
        try:
            requests.get(f"http://127.0.0.1:{port}{EVENTS_PATH}", timeout=5)
            return proc, port
        except requests.RequestException:
            time.sleep(0.1)
    stop_server(proc)
    raise RuntimeError(f"{server} did not start")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def events_lua_env(template: Path, secret: str, repositories: int) -> dict:
    """The environment ``events.lua`` reads: envelope template, secret, a fresh run id."""
    return {
        **os.environ,
        "BENCH_TEMPLATE": str(template),
        "BENCH_SECRET": secret,
        "BENCH_RUN": uuid.uuid4().hex,
        "BENCH_PREFIX": IMAGE_PREFIX,
        "BENCH_REPOSITORIES": str(repositories),
    }


def run_wrk(port: int, env: dict, connections: int, threads: int, duration: float) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--latency", "-s", str(LUA)]
        + [f"http://127.0.0.1:{port}{EVENTS_PATH}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout

    def latency(pct: str) -> float:
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(found.group(1)), found.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def bench_server(
    server: str, args, env: dict, secret: str, template: Path, postgres_pid: int | None, tree: Path = ROOT
) -> dict:
    proc, port = start_server(env, server, tree)
    try:
        session = requests.Session()
        url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        headers = {"Authorization": secret, "Content-Type": CONTENT_TYPE}
        # Warm-up: every worker's connection, and the repository rows exist.
        for i in range(args.repositories * 2):
            body = envelope(str(uuid.uuid4()), f"{IMAGE_PREFIX}{i % args.repositories}")
            session.post(url, data=body, headers=headers, timeout=10).raise_for_status()
        # The tree's name, not its path: the results are committed.
        result: dict = {"server": server, "tree": tree.name, "connections": args.connections}
        result["load_before"] = load_average()
        result["raw_rate_single"] = raw_insert_rate(args.database_url, 1, args.duration)
        result["raw_rate"] = raw_insert_rate(args.database_url, args.connections, args.duration)
        wrk_env = events_lua_env(template, secret, args.repositories)
        cpu_before = tree_cpu_seconds(proc.pid), tree_cpu_seconds(postgres_pid)
        result["wrk"] = run_wrk(port, wrk_env, args.connections, args.wrk_threads, args.duration)
        served = result["wrk"]["requests"]
        result["server_cpu_ms"] = (tree_cpu_seconds(proc.pid) - cpu_before[0]) * 1000 / served
        result["postgres_cpu_ms"] = (tree_cpu_seconds(postgres_pid) - cpu_before[1]) * 1000 / served
        result["ratio_single"] = result["wrk"]["rate"] / result["raw_rate_single"]
        result["ratio"] = result["wrk"]["rate"] / result["raw_rate"]
        result["load_after_wrk"] = load_average()
        run = uuid.uuid4().hex
        # Half the best rate: the rate wrk just reached with this server, unless --rate.
        rate = args.rate or result["wrk"]["rate"] / 2
        requests_bytes = [
            http_request(port, secret, envelope(f"{run}-{i}", f"{IMAGE_PREFIX}{i % args.repositories}"))
            for i in range(int(rate * args.duration))
        ]
        sent = open_loop(
            host="127.0.0.1", port=port, build=requests_bytes.__getitem__, rate=rate, duration=args.duration
        )
        result["load_after_open_loop"] = load_average()
        result["open_loop"] = {
            "offered": rate,
            "achieved": sent.ok / sent.elapsed,
            "ok": sent.ok,
            "failed": sent.failed,
            "failures": {str(k): v for k, v in sent.failures.items()},
            "p50_ms": statistics.median(sent.latencies) * 1000,
            "p99_ms": percentile(sent.latencies, 0.99) * 1000,
            "max_ms": max(sent.latencies) * 1000,
        }
        # Redelivery of acknowledged envelopes (the registry after a timeout): no effect.
        before = manage(env, "shell", "-c", COUNTS, tree=tree).split()
        for i in sent.acknowledged[:: max(1, len(sent.acknowledged) // 200)]:
            body = envelope(f"{run}-{i}", f"{IMAGE_PREFIX}{i % args.repositories}")
            session.post(url, data=body, headers=headers, timeout=10).raise_for_status()
        result["redelivery_changed_nothing"] = manage(env, "shell", "-c", COUNTS, tree=tree).split() == before
        return result
    finally:
        stop_server(proc)


def warm_up(args, env: dict, secret: str, template: Path, tree: Path = ROOT) -> None:
    """Untimed load on a fresh cluster: the first measurement of a run used to come out
    10-30 % slower than the same configuration measured again (cold caches, the first
    checkpoint), whichever server it was."""
    if args.warmup <= 0:
        return
    raw_insert_rate(args.database_url, args.connections, args.warmup / 2)
    proc, port = start_server(env, args.servers.split(",")[0], tree)
    try:
        session = requests.Session()
        url = f"http://127.0.0.1:{port}{EVENTS_PATH}"
        headers = {"Authorization": secret, "Content-Type": CONTENT_TYPE}
        for i in range(args.repositories):
            body = envelope(str(uuid.uuid4()), f"{IMAGE_PREFIX}{i}")
            session.post(url, data=body, headers=headers, timeout=10).raise_for_status()
        wrk_env = events_lua_env(template, secret, args.repositories)
        run_wrk(port, wrk_env, args.connections, args.wrk_threads, args.warmup / 2)
    finally:
        stop_server(proc)


def tree_comparison(results: list[dict]) -> list[str]:
    """With more than one tree: per server configuration, each tree's medians and their
    ratio to the first tree's."""
    labels = list(dict.fromkeys(r["tree_label"] for r in results))
    if len(labels) < 2:
        return []
    first = labels[0]
    lines = [
        "",
        f"Trees against {first} (ratio of the medians; > 1 is better for the ratio and rate, < 1 for CPU and latency):",
        "",
        "| server | measure | " + " | ".join(labels) + " | " + " | ".join(f"{n} / {first}" for n in labels[1:]) + " |",
        "|---|---|" + "---|" * (2 * len(labels) - 1),
    ]
    measures = [
        ("ratio to raw INSERT+COMMIT, 1 connection", lambda r: r["ratio_single"]),
        (f"ratio to raw INSERT+COMMIT, {results[0]['connections']} connections", lambda r: r["ratio"]),
        ("events/s (wrk)", lambda r: r["wrk"]["rate"]),
        ("CPU ms/event, server + PG", lambda r: r["server_cpu_ms"] + r["postgres_cpu_ms"]),
        # Each tree at half its own rate unless --rate: a slower tree is offered less.
        ("p99 ms in the open loop", lambda r: r["open_loop"]["p99_ms"]),
    ]
    for server in dict.fromkeys(r["server"] for r in results):
        for title, value in measures:
            medians = [
                statistics.median(value(r) for r in results if r["server"] == server and r["tree_label"] == label)
                for label in labels
            ]
            lines.append(
                f"| {server} | {title} | "
                + " | ".join(f"{m:,.2f}" for m in medians)
                + " | "
                + " | ".join(f"{m / medians[0]:.3f}" for m in medians[1:])
                + " |"
            )
    return lines


def report(results: list[dict], args, pushes: int, recorded: int) -> str:
    lines = [
        f"{args.connections} connections (wrk -t{args.wrk_threads}), {args.duration:.0f} s per phase, "
        f"{args.repositories} repositories, {os.cpu_count()} CPUs",
        "",
        f"| server | raw INSERT+COMMIT/s, 1 / {args.connections} connections | events/s (wrk) | "
        f"ratio to 1 / {args.connections} connections | wrk p50 / p99 ms | CPU ms/event server + PG | "
        "open loop: offered, achieved, p50 / p99 / max ms | load avg before / after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        w, o = r["wrk"], r["open_loop"]
        errors = f" ({w['non2xx']} non-2xx)" if w["non2xx"] else ""
        errors += f" (socket errors: {w['socket_errors']})" if w["socket_errors"] else ""
        failed = f" ({o['failed']} failed: {o['failures']})" if o["failed"] else ""
        lines.append(
            f"| {r['config']} | {r['raw_rate_single']:,.0f} / {r['raw_rate']:,.0f} | {w['rate']:,.0f}{errors} | "
            f"{r['ratio_single']:.2f} / {r['ratio']:.2f} | "
            f"{w['p50_ms']:.1f} / {w['p99_ms']:.1f} | {r['server_cpu_ms']:.2f} + {r['postgres_cpu_ms']:.2f} | "
            f"{o['offered']:,.0f}, {o['achieved']:,.0f}{failed}, {o['p50_ms']:.1f} / "
            f"{o['p99_ms']:.1f} / {o['max_ms']:.0f} | {r['load_before']:.1f} / {r['load_after_open_loop']:.1f} |"
        )
    lines += [
        "",
        f"| server | runs | ratio to 1 connection: median (min-max) | ratio to {args.connections} connections: "
        f"median (min-max) | events/s: median | p99 at {f'{args.rate:,.0f}/s' if args.rate else 'half the rate'}: "
        "median (max) |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for server in dict.fromkeys(r["config"] for r in results):
        runs = [r for r in results if r["config"] == server]
        singles = [r["ratio_single"] for r in runs]
        ratios = [r["ratio"] for r in runs]
        p99s = [r["open_loop"]["p99_ms"] for r in runs]
        lines.append(
            f"| {server} | {len(runs)} | "
            f"**{statistics.median(singles):.2f}** ({min(singles):.2f}-{max(singles):.2f}) | "
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) | "
            f"{statistics.median(r['wrk']['rate'] for r in runs):,.0f} | "
            f"{statistics.median(p99s):.1f} ms ({max(p99s):.1f}) |"
        )
    lines += tree_comparison(results)
    redelivery = all(r["redelivery_changed_nothing"] for r in results)
    lines += [
        "",
        f"recorded event ids {recorded}, counted pushes {pushes} (exactly once: {recorded == pushes}); "
        f"re-sent acknowledged envelopes changed nothing: {redelivery}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="", help="a throwaway PostgreSQL database (default: start one)")
    parser.add_argument("--cache-url", default="", help="Django cache (default: start a Redis, as in production)")
    parser.add_argument(
        "--servers", default="granian:2x4,sync:4", help="server configurations (granian:NxT, sync:N, gthread:NxT)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="measure every server this many times, interleaved")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds of untimed load before the first round")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections and raw-insert connections")
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="offered events/s for the open-loop phase (default: half wrk's rate)"
    )
    parser.add_argument("--repositories", type=int, default=100, help="images the events are spread over")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--tree", action="append", help="source tree to serve (repeatable; default: this checkout)")
    parser.add_argument("--migrate-tree", help="tree that migrates and seeds (default: the newest)")
    args = parser.parse_args()
    trees = tree_tools.resolve(args.tree)
    migrator = tree_tools.migrating_tree(trees, args.migrate_tree)

    work = Path(tempfile.mkdtemp(prefix="bench-events-"))
    postgres = None
    if not args.database_url:
        postgres, args.database_url = start_postgres(work)
    redis = None
    if not args.cache_url:
        redis, args.cache_url = start_redis(work)
    secret = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(
        DATABASE_URL=args.database_url,
        CACHE_URL=args.cache_url,
        VAR_DIR=str(work / "var"),
        REGISTRY_NOTIFICATION_SECRET=secret,
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        # Nothing listens here: a push to a repository without a row is then trusted at
        # once instead of verified (the rows are created by the warm-up).
        REGISTRY_API_URL=f"http://127.0.0.1:{free_port()}",
    )
    template = work / "envelope.json"
    template.write_bytes(envelope("@@ID@@", "@@REPO@@"))
    try:
        manage(env, "migrate", "--noinput", tree=migrator)
        manage(env, "shell", "-c", SEED, tree=migrator)
        print(f"load average at start: {load_average():.2f}", file=sys.stderr)
        postgres_pid = postgres.pid if postgres is not None else None
        warm_up(args, env, secret, template, trees[0])
        servers = args.servers.split(",")
        results = []
        for _round in range(args.rounds):
            for tree in trees:
                label = tree_tools.label(tree, trees)
                for server in servers:
                    print(f"round {_round + 1}/{args.rounds}: {label} {server}", file=sys.stderr)
                    result = bench_server(server, args, env, secret, template, postgres_pid, tree)
                    result["tree_label"] = label
                    result["config"] = f"{label} {server}" if len(trees) > 1 else server
                    results.append(result)
        pushes, recorded = map(int, manage(env, "shell", "-c", COUNTS, tree=migrator).split())
    finally:
        if postgres is not None:
            postgres.terminate()
            postgres.wait(timeout=20)
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=20)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(report(results, args, pushes, recorded))


if __name__ == "__main__":
    main()
