"""Realm distinct requests under the production server, source trees in short turns.

    .venv/bin/python bench/jwt_auth/alternate.py --tree OLD_CHECKOUT --tree . [--cycles 30]
        [--phase 4] [--concurrency 8] [--requests 20000] [--users 60] [--json FILE]

``compare.py`` measures each tree for about half a minute per round, one tree after the
other; on a machine whose speed swings by a third within minutes, its rates move more
between rounds than between trees. This one keeps every server up at once (each tree's
own ``scripts/web.sh``: granian, one process per CPU, access log off; and the bare
signer, the reference of ``compare.py``) and loads one at a time for a short phase
(``--phase`` seconds of ``wrk`` on ``compare.py``'s distinct requests, closed loop),
in turns: A B C, then C B A, and so on for ``--cycles``. An idle server uses no CPU. A
slow moment then falls on the phases of one cycle, which are seconds apart, and the
ratio of each tree to the first one in the same cycle holds: its median over the cycles
is the result, with the quartiles. The CPU per request of the loaded server, PostgreSQL
and Redis is measured per phase too.

Same database, population and request list as ``compare.py`` (``seeded_database``).
Markdown on stdout, progress on stderr, raw phases with ``--json``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

import jwt
import requests

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import trees as tree_tools  # noqa: E402
from compare import (  # noqa: E402
    REPEATED_QUERY,
    SETTLE_S,
    add_population_arguments,
    log,
    open_run,
    seeded_database,
    start_tree_server,
    wrk,
)

BARE = "bare signer"


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, mid, high = statistics.quantiles(values, n=4)
    return low, mid, high


def markdown(report: dict) -> str:
    labels, first = report["trees"], report["trees"][0]
    phases = report["phases"]
    lines = [
        f"{report['cycles']} cycles of {report['phase']:.0f}-second phases, {report['concurrency']} connections; "
        f"{report['workers']} server processes per tree (granian); {report['requests']:,} distinct requests; "
        f"reference: {first} in the same cycle",
        "",
        "| tree | distinct req/s (median) | ratio to the bare signer (median) | req/s against "
        f"{first}: median of cycles (quartiles) | server CPU ms/request (of it PostgreSQL + Redis) | "
        f"CPU against {first}: median of cycles | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for label in [*labels, BARE]:
        own = phases[label]
        rates = [p["rps"] for p in own]
        to_bare = [p["rps"] / b["rps"] for p, b in zip(own, phases[BARE], strict=True)]
        against = [p["rps"] / f["rps"] for p, f in zip(own, phases[first], strict=True)]
        cpu_against = [p["server_cpu_ms"] / f["server_cpu_ms"] for p, f in zip(own, phases[first], strict=True)]
        low, mid, high = quartiles(against)
        lines.append(
            f"| {label} | {statistics.median(rates):,.0f} | {statistics.median(to_bare):.3f} | "
            f"**{mid:.3f}** ({low:.3f}-{high:.3f}) | {statistics.median(p['server_cpu_ms'] for p in own):.2f} "
            f"({statistics.median(p['db_cpu_ms'] for p in own):.2f}) | {statistics.median(cpu_against):.3f} | "
            f"{sum(p['errors'] for p in own)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help="source tree to serve (repeatable; the first is the reference)")
    add_population_arguments(parser)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--phase", type=float, default=4, help="seconds of load per tree and cycle")
    parser.add_argument("--concurrency", type=int, default=8, help="wrk connections")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="server processes per tree")
    parser.add_argument("--json", type=Path, help="write the raw phases here")
    args = parser.parse_args()
    trees, migrator, work, stack = open_run(args.tree, args.migrate_tree, "alternate")
    labels = {tree: tree_tools.label(tree, trees) for tree in trees}
    started = time.monotonic()
    try:
        env, key, _plan, seeded, entries, requests_file = seeded_database(
            stack, work, migrator, args.users, args.requests
        )
        basic = base64.b64encode(f"benchdev:{seeded['pats']['benchdev']}".encode()).decode()
        # The bare signer answers any request with the same token (auth.lua repeats one).
        loads = {"distinct.lua": {"BENCH_REQUESTS": str(requests_file)}, "auth.lua": {"BENCH_BASIC": basic}}
        backing = [stack.pg_proc.pid, stack.redis_proc.pid]
        servers = {}
        for tree in trees:
            proc, base = start_tree_server(stack, tree, env, args.workers)
            servers[labels[tree]] = (proc, base)
        # The bare signer signs the claims of a real token, as in compare.py.
        _proc, base = servers[labels[trees[0]]]
        answer = requests.get(base + REPEATED_QUERY, headers={"Authorization": f"Basic {basic}"}, timeout=30)
        answer.raise_for_status()
        claims_path = work / "claims.json"
        claims_path.write_text(json.dumps(jwt.decode(answer.json()["token"], options={"verify_signature": False})))
        bare_env = {**env, "BARE_KEY_PATH": str(key), "BARE_CLAIMS_PATH": str(claims_path)}
        servers[BARE] = stack.server("bare_signer:app", bare_env, args.workers, "granian")
        order = [labels[tree] for tree in trees] + [BARE]
        log("warm-up: 3 s on each server")
        for label in order:
            script = _script(label)
            wrk(servers[label][1] + "/", script, loads[script], args.concurrency, 3)
        phases: dict[str, list[dict]] = {label: [] for label in order}
        for cycle in range(args.cycles):
            if cycle % 5 == 0:
                log(f"cycle {cycle + 1}/{args.cycles}")
            for label in order if cycle % 2 == 0 else order[::-1]:
                proc, base = servers[label]
                script = _script(label)
                time.sleep(SETTLE_S)
                phases[label].append(
                    wrk(
                        base + "/",
                        script,
                        loads[script],
                        args.concurrency,
                        args.phase,
                        cpu_pids=[proc.pid, *backing],
                    )
                )
        report = {
            "trees": [labels[tree] for tree in trees],
            "cycles": args.cycles,
            "phase": args.phase,
            "concurrency": args.concurrency,
            "workers": args.workers,
            "requests": len(entries),
            "phases": phases,
            "elapsed_s": round(time.monotonic() - started),
        }
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))
        print(markdown(report))
        log(f"done in {report['elapsed_s']} s")
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


def _script(label: str) -> str:
    return "auth.lua" if label == BARE else "distinct.lua"


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
