"""Realm CPU per distinct request, in-process, source trees compared batch by batch.

    .venv/bin/python bench/jwt_auth/paired.py --tree OLD_CHECKOUT --tree . [--rounds 30]
        [--batch 300] [--requests 20000] [--users 60] [--json FILE]

``compare.py`` measures the realm as deployed (granian, wrk), but our test machines'
speed swings by a third within minutes, so its rates move more between rounds than
between trees. This one measures the work itself. Each tree runs in its own process
(the tree's ``.venv``, ``manage.py shell``) that sends the pre-generated distinct
requests of ``compare.py`` through the tree's production WSGI application
(``gitlab_core.wsgi``: the bare door, as the web server calls it), on one thread,
without a server. The trees take turns, a batch each (ABC, then CBA, ...), every tree
sending the same requests in the same order; each batch records the process's CPU
(thread time) and the CPU of its PostgreSQL backend (``/proc``). A slow minute slows
every tree of that round alike, so the ratio of each tree's cost to the first tree's
in the same round holds where rates do not: its median over the rounds is the result.

Not measured: the web server and its threads, the signing reference, Redis (no request
repeats within a process, so the decision reuse is never hit). One PostgreSQL and one
Redis in a temporary directory, migrated and seeded as ``compare.py`` does. Markdown on
stdout, progress on stderr, raw batches with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import trees as tree_tools  # noqa: E402
from compare import add_population_arguments, log, open_run, seeded_database  # noqa: E402

# Runs inside each tree's ``manage.py shell``: one batch per line read from stdin.
WORKER = r"""
import io, os, sys, time
from urllib.parse import urlsplit
from django.db import connection
from gitlab_core.wsgi import application

entries = [line.rstrip("\n").split("\t", 1) for line in open(os.environ["BENCH_REQUESTS"])]
position = 0
ticks = os.sysconf("SC_CLK_TCK")


def send(authorization, path):
    parts = urlsplit(path)
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": parts.path, "QUERY_STRING": parts.query,
        "SCRIPT_NAME": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1",
        "HTTP_AUTHORIZATION": authorization, "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""), "wsgi.url_scheme": "http",
    }
    statuses = []
    body = application(environ, lambda status, headers, exc_info=None: statuses.append(status))
    b"".join(body)
    if hasattr(body, "close"):
        body.close()
    if not statuses[0].startswith("200"):
        raise SystemExit(f"{statuses[0]} for {path}")


def backend_cpu():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / ticks


for line in sys.stdin:
    count = int(line)
    database, started = backend_cpu(), time.thread_time()
    for _ in range(count):
        send(*entries[position % len(entries)])
        position += 1
    python, database = time.thread_time() - started, backend_cpu() - database
    sys.__stdout__.write(f"RESULT {python} {database}\n")
    sys.__stdout__.flush()
"""


class Worker:
    def __init__(self, tree: Path, env: dict):
        self.proc = subprocess.Popen(
            [tree_tools.python(tree), "manage.py", "shell", "-c", WORKER],
            cwd=tree,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def batch(self, count: int) -> tuple[float, float]:
        """(Python, PostgreSQL) CPU seconds per request over ``count`` requests."""
        self.proc.stdin.write(f"{count}\n")
        self.proc.stdin.flush()
        while line := self.proc.stdout.readline():
            if line.startswith("RESULT "):
                python, database = (float(value) for value in line.split()[1:])
                return python / count, database / count
        raise SystemExit(f"a worker stopped (exit {self.proc.wait()})")

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help="source tree (repeatable; the first is the reference)")
    add_population_arguments(parser)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--batch", type=int, default=300, help="requests per tree per round")
    parser.add_argument("--json", type=Path, help="write the raw batches here")
    args = parser.parse_args()
    if (args.rounds + 1) * args.batch > args.requests:
        raise SystemExit("--rounds x --batch must stay below --requests: no request may repeat in a process")
    trees, migrator, work, stack = open_run(args.tree, args.migrate_tree, "paired")
    labels = [tree_tools.label(tree, trees) for tree in trees]
    workers: list[Worker] = []
    try:
        env, _key, _plan, _seeded, _entries, requests_file = seeded_database(
            stack, work, migrator, args.users, args.requests
        )
        # One connection for the whole run: the backend whose CPU is read stays the same.
        worker_env = {**env, "BENCH_REQUESTS": str(requests_file), "DATABASE_CONN_MAX_AGE": "86400"}
        workers = [Worker(tree, worker_env) for tree in trees]
        log("warm-up: one untimed batch per tree (push grants create repository rows)")
        for worker in workers:
            worker.batch(args.batch)
        batches: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
        for number in range(args.rounds):
            order = list(range(len(trees))) if number % 2 == 0 else list(range(len(trees)))[::-1]
            for index in order:
                batches[labels[index]].append(workers[index].batch(args.batch))
            if (number + 1) % 5 == 0:
                log(f"round {number + 1}/{args.rounds}")
        report = summarise(batches, labels, args)
        print(markdown(report))
        if args.json:
            args.json.write_text(json.dumps({**report, "batches": batches}, indent=1))
    finally:
        for worker in workers:
            worker.close()
        stack.close()


def summarise(batches: dict, labels: list[str], args) -> dict:
    reference = batches[labels[0]]
    trees = {}
    for label in labels:
        own = batches[label]
        ratios = [(p + d) / (rp + rd) for (p, d), (rp, rd) in zip(own, reference, strict=True)]
        trees[label] = {
            "python_ms": statistics.median(p for p, _ in own) * 1e3,
            "postgresql_ms": statistics.median(d for _, d in own) * 1e3,
            "cost_ratio_median": statistics.median(ratios),
            "cost_ratio_quartiles": statistics.quantiles(ratios, n=4)[::2] if len(ratios) > 1 else ratios * 2,
        }
    return {
        "rounds": args.rounds,
        "batch": args.batch,
        "requests": args.requests,
        "reference": labels[0],
        "trees": trees,
        "finished": time.strftime("%Y-%m-%d %H:%M"),
    }


def markdown(report: dict) -> str:
    lines = [
        f"{report['rounds']} rounds of {report['batch']} distinct requests per tree, in-process, one thread; "
        f"reference: {report['reference']}",
        "",
        "| tree | Python CPU ms/request | PostgreSQL CPU ms/request "
        "| cost against the reference (median of rounds; quartiles) |",
        "|---|---|---|---|",
    ]
    for label, tree in report["trees"].items():
        low, high = tree["cost_ratio_quartiles"]
        lines.append(
            f"| {label} | {tree['python_ms']:.3f} | {tree['postgresql_ms']:.3f} | "
            f"**{tree['cost_ratio_median']:.3f}** ({low:.3f}-{high:.3f}) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
