"""Realm benchmark of *distinct* requests, able to compare source trees in one run.

    .venv/bin/python bench/jwt_auth/compare.py [--tree DIR] [--tree DIR2] [--duration 10]
        [--rounds 3] [--concurrency 8] [--requests 20000] [--users 60] [--json FILE]

A registry client repeats its token request, and the realm reuses the decision of an
identical request for a second (``jwt_auth/decisions.py``): a benchmark that repeats one
request measures that cache and the signature. This one sends a pre-generated list of
distinct requests (default 20,000: 61 users with their own personal access tokens and
6 deploy tokens, over 125 image names in 25 projects of 10 groups; members via a group,
direct project members, outsiders reading public projects; 1-3 scopes a request, pull or
pull,push, with the query string of a pull or push: `account`, `service`, `scope`). Every wrk thread cycles through
its own share of the list, so a request comes back only after the whole list has been
sent: list length / rate seconds later (printed; it must stay above the 1-second reuse
window, and does unless the rate exceeds the list length).

One PostgreSQL (``initdb`` in a temporary directory, as ``run.py``) and one Redis serve
every tree. The database is migrated and seeded by the newest tree (the one whose
migrations include the others'; ``--migrate-tree`` to choose). Each round measures, in
this order, the bare signer (``bare_signer.py`` under this checkout's production
server: the reference), then each ``--tree`` (in the order given in odd rounds,
reversed in even ones), each served the production way (``scripts/web.sh`` of the tree
with the tree's ``.venv``: granian, one process per CPU, access log off):

* distinct requests, closed loop (wrk, ``--concurrency`` connections; the best level is
  kept), after a 2-second untimed warm-up;
* the repeated request of ``run.py`` (one developer, one scope, pull,push);
* distinct requests paced at half the best distinct rate (p99 goal < 20 ms).

Ratios are taken to the bare signer of the same round (the headline: distinct requests
to bare signer), and the one-core signing rate is measured every round too. Before its
first round, each tree answers a fixed sample of the requests, and the fingerprints of
the ``access`` claims are compared between trees (a refactor must not change what is
granted). Markdown tables on stdout, progress on stderr, raw results with ``--json``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import re
import resource
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import jwt
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(HERE), str(ROOT / "bench")]
import trees as tree_tools  # noqa: E402
from run import Stack, _tree_cpu, free_port, load_average, server_env, signing_rate, wait_http  # noqa: E402

REPEATED_QUERY = "/jwt/auth?service=container_registry&scope=repository:bench/group/app/img:pull,push"
REUSE_WINDOW_S = 1.0
# A pause longer than the decision-reuse window between two measurements of one server.
SETTLE_S = 1.2
LEVELS = ["DEVELOPER", "REPORTER", "MAINTAINER", "GUEST"]
IMAGE_SUFFIXES = ["", "/web", "/api/server", "/worker", "/cache"]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- The population and the request list ---------------------------------------------
def make_plan(users: int) -> tuple[dict, dict[str, list[str]], list[str]]:
    """The seed plan (see ``seed_many.py``), the project paths each user reaches (a
    guess, used to aim most scopes at something the caller may get) and the public
    projects."""
    groups = [["bench", None, "private"], ["bench/group", "bench", "private"]]
    projects = [["bench/group/app", "private"]]
    group_projects: dict[str, list[str]] = {}
    for g, visibility in enumerate(["private", "private", "public", "public"]):
        top = f"org{g}"
        groups += [[top, None, visibility], [f"{top}/team", top, visibility]]
        paths = [f"{top}/p{j}" for j in range(4)] + [f"{top}/team/s{j}" for j in range(2)]
        for j, path in enumerate(paths):
            public = g == 2 or (g == 3 and j < 2)
            projects.append([path, "public" if public else "private"])
        group_projects[top] = paths
    public = [path for path, visibility in projects if visibility == "public"]
    plan: dict = {
        "groups": groups,
        "projects": projects,
        "users": [["benchdev", ["api"]]],
        "group_members": [],
        "project_members": [["benchdev", "bench/group/app", "DEVELOPER"]],
        "deploy_tokens": [
            ["org0/p0", ["read_registry"]],
            ["org0/p1", ["read_registry", "write_registry"]],
            ["org1/p0", ["read_registry"]],
            ["org1/team/s0", ["read_registry", "write_registry"]],
            ["org3/p2", ["read_registry"]],
            ["bench/group/app", ["read_registry", "write_registry"]],
        ],
    }
    reach = {"benchdev": ["bench/group/app", *public]}
    for i in range(users):
        name = f"dev{i:03d}"
        scopes = (
            ["read_registry"]
            if i % 7 == 6
            else ["read_api"]
            if i % 11 == 10
            else ["read_registry", "write_registry"]
            if i % 13 == 12
            else ["api"]
        )
        plan["users"].append([name, scopes])
        reach[name] = list(public)
        if i % 5 != 4:  # every fifth user is an outsider: public projects only
            top = f"org{i % 4}"
            plan["group_members"].append([name, top, LEVELS[(i // 4) % 4]])
            reach[name] += group_projects[top]
        if i % 3 == 0:  # a direct member of a project of another group
            path = f"org{(i + 1) % 4}/p{i % 4}"
            plan["project_members"].append([name, path, "DEVELOPER"])
            reach[name].append(path)
    return plan, reach, public


def images_of(project: str) -> list[str]:
    return [project + suffix for suffix in IMAGE_SUFFIXES]


def build_requests(plan: dict, reach: dict, seeded: dict, count: int, seed: int = 1) -> list[tuple[str, str]]:
    """``count`` distinct (Authorization, path) pairs, credentials in rotation."""
    rng = random.Random(seed)
    all_images = [image for project, _ in plan["projects"] for image in images_of(project)]
    credentials = []  # (login, secret, images it is meant to reach)
    for username, _scopes in plan["users"]:
        reached = [image for project in dict.fromkeys(reach[username]) for image in images_of(project)]
        credentials.append((username, seeded["pats"][username], reached))
    for username, secret, project in seeded["deploy_tokens"]:
        credentials.append((username, secret, images_of(project)))
    seen: set[tuple[str, str]] = set()
    result = []
    for k in range(count):
        login, secret, reached = credentials[k % len(credentials)]
        authorization = "Basic " + base64.b64encode(f"{login}:{secret}".encode()).decode()
        for _attempt in range(1000):
            wanted = rng.choice([1, 1, 1, 2, 2, 3])
            chosen: list[str] = []
            while len(chosen) < wanted:
                image = rng.choice(reached if rng.random() < 0.75 else all_images)
                if image not in chosen:
                    chosen.append(image)
            scopes = [f"repository:{image}:{rng.choice(['pull', 'pull,push'])}" for image in chosen]
            # What a pull or push sends (skopeo; Docker without offline access):
            # ``offline_token=true`` and ``client_id`` come only with ``docker login``,
            # which asks for no scope and gets a refresh token.
            query = urlencode(
                [("account", login), ("service", "container_registry")] + [("scope", scope) for scope in scopes]
            )
            pair = (authorization, "/jwt/auth?" + query)
            if pair not in seen:
                break
        else:
            raise SystemExit("could not draw enough distinct requests: use more --users or fewer --requests")
        seen.add(pair)
        result.append(pair)
    return result


# --- Servers and load ------------------------------------------------------------------
def start_tree_server(stack: Stack, tree: Path, env: dict, workers: int) -> tuple[subprocess.Popen, str]:
    """The tree's own ``scripts/web.sh`` (granian, the tree's ``.venv``), access log off."""
    port = free_port()
    server_env = {
        **env,
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "WEB_ACCESS_LOG": "false",
        "PYTHONPATH": str(tree),
    }
    proc = subprocess.Popen(
        [str(tree / "scripts" / "web.sh")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=server_env,
        cwd=tree,
        start_new_session=True,
    )
    stack.procs.append(proc)
    wait_http(f"http://127.0.0.1:{port}/", timeout=60)
    return proc, f"http://127.0.0.1:{port}"


def _latency(out: str, pct: str) -> float:
    found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, script: str, env: dict, connections: int, duration: float, delay_ms: int = 0, cpu_pids=()) -> dict:
    """One wrk run (closed loop; with ``delay_ms`` each connection pauses first)."""
    threads = min(connections, 2)
    pids = list(cpu_pids)
    server_before, backing_before = _tree_cpu(pids[:1]), _tree_cpu(pids[1:])
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
        + ["-s", str(HERE / script), url],
        capture_output=True,
        text=True,
        check=True,
        env={
            **os.environ,
            **env,
            "BENCH_THREADS": str(threads),
            "BENCH_START": str(secrets.randbelow(1 << 30)),
            "BENCH_DELAY_MS": str(delay_ms),
        },
    ).stdout
    server_cpu = _tree_cpu(pids[:1]) - server_before
    backing_cpu = _tree_cpu(pids[1:]) - backing_before
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    done = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "c": connections,
        "requests": done,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": _latency(out, "50"),
        "p99": _latency(out, "99"),
        "errors": (int(non2xx.group(1)) if non2xx else 0),
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        # CPU per request of the server side (web server, PostgreSQL and Redis; of these,
        # PostgreSQL and Redis alone) and of wrk: robust against other load, unlike rates.
        "server_cpu_ms": round((server_cpu + backing_cpu) / max(done, 1) * 1000, 3),
        "db_cpu_ms": round(backing_cpu / max(done, 1) * 1000, 3),
        "wrk_cpu_ms": round(client_cpu / max(done, 1) * 1000, 3),
    }


def paced(url: str, script: str, env: dict, rate: float, duration: float, p50_ms: float, cpu_pids=()) -> dict:
    """About ``rate`` requests/s, as ``run.py``'s ``paced``: connections that each pause
    between requests (~20 ms cycle), the pause calibrated by a 2-second trial."""
    connections = max(4, math.ceil(rate * 0.020))
    cycle_ms = connections / rate * 1000
    delay = max(round(cycle_ms - p50_ms), 1)
    trial = wrk(url, script, env, connections, 2, delay_ms=delay)
    latency = connections / max(trial["rps"], 1) * 1000 - delay
    delay = max(round(cycle_ms - latency), 1)
    time.sleep(SETTLE_S)
    result = wrk(url, script, env, connections, duration, delay_ms=delay, cpu_pids=cpu_pids)
    result["target_rps"] = round(rate, 1)
    return result


def sample_answers(base: str, entries: list[tuple[str, str]]) -> dict:
    """Each sampled request's status and granted ``access``, and a fingerprint of them."""
    session = requests.Session()
    answers = []
    for authorization, path in entries:
        response = session.get(base + path, headers={"Authorization": authorization}, timeout=30)
        access = []
        if response.status_code == 200:
            claims = jwt.decode(response.json()["token"], options={"verify_signature": False})
            access = sorted((a["type"], a["name"], tuple(a["actions"])) for a in claims.get("access", []))
        answers.append([response.status_code, access])
    granted = sum(1 for _status, access in answers if access)
    push = sum(1 for _status, access in answers for a in access if "push" in a[2])
    scopes = sum(path.count("scope=") for _authorization, path in entries)
    entries_granted = sum(len(access) for _status, access in answers)
    return {
        "requests": len(answers),
        "status_200": sum(1 for status, _access in answers if status == 200),
        "with_access": granted,
        "scopes": scopes,
        "scopes_granted": entries_granted,
        "push_granted": push,
        "fingerprint": hashlib.sha256(json.dumps(answers).encode()).hexdigest()[:16],
        # Each request's (who, query, status, access) for telling trees apart.
        "answers": [
            [_who(authorization), path, *answer] for (authorization, path), answer in zip(entries, answers, strict=True)
        ],
    }


def _who(authorization: str) -> str:
    """The user name of Basic credentials (the token left out), or "anonymous"."""
    if not authorization.startswith("Basic "):
        return "anonymous"
    return base64.b64decode(authorization.removeprefix("Basic ")).decode().partition(":")[0]


# --- Reporting -------------------------------------------------------------------------
def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def markdown(report: dict) -> str:
    rounds, labels = report["rounds"], report["trees"]
    lines = [
        f"RS256; {report['workers']} server processes (granian, scripts/web.sh of each tree), "
        f"{report['cpus']} CPUs; {report['requests']:,} distinct requests ({report['credentials']} credentials, "
        f"{report['images']} images, {report['scopes_per_request']:.2f} scopes a request); "
        f"{report['duration']:.0f} s per phase, {len(rounds)} rounds; load average "
        f"{report['load_before']} before, {report['load_after']} after",
        "",
        "Per round (ratios to the bare signer of the same round):",
        "",
        "| round | tree | distinct req/s | ratio | p50 / p99 ms | repeated req/s | ratio | p99 ms | "
        "half-rate paced: achieved, p50 / p99 ms | server CPU ms/req distinct (PG+Redis) / repeated | "
        "repeat after s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for number, rnd in enumerate(rounds, 1):
        bare = rnd["bare_best"]
        lines.append(
            f"| {number} | bare signer | {bare['rps']:,.0f} | 1.00 | {bare['p50']:.1f} / {bare['p99']:.1f} | | | | | "
            f"{bare['server_cpu_ms']:.2f} | (one core signs {rnd['sign_rate']:,.0f}/s) |"
        )
        for name in labels:
            t = rnd["trees"][name]
            d, r, p = t["distinct_best"], t["repeated_best"], t["paced"]
            errors = sum(x["errors"] for x in [*t["distinct"], *t["repeated"], p])
            flag = f" ({errors} non-2xx)" if errors else ""
            lines.append(
                f"| {number} | {name} | {d['rps']:,.0f}{flag} | {d['rps'] / bare['rps']:.2f} | "
                f"{d['p50']:.1f} / {d['p99']:.1f} | {r['rps']:,.0f} | {r['rps'] / bare['rps']:.2f} | {r['p99']:.1f} | "
                f"{p['rps']:,.0f} of {p['target_rps']:,.0f}, {p['p50']:.1f} / {p['p99']:.1f} | "
                f"{d['server_cpu_ms']:.2f} ({d['db_cpu_ms']:.2f}) / {r['server_cpu_ms']:.2f} | "
                f"{report['requests'] / d['rps']:.1f} |"
            )
    summary = report["summary"]
    lines += [
        "",
        "Per tree, medians over the rounds (min-max):",
        "",
        "| tree | **distinct: ratio to bare signer** | distinct req/s | p50 / p99 ms | ratio to one-core signing | "
        "repeated: ratio to bare | p99 ms | distinct paced at half rate: p99 ms (goal < 20) | "
        "server CPU ms/req distinct (PG+Redis) / repeated | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in labels:
        s = summary[name]
        lines.append(
            f"| {name} | **{s['distinct_ratio']:.2f}** ({s['distinct_ratio_min']:.2f}-{s['distinct_ratio_max']:.2f}) | "
            f"{s['distinct_rps']:,.0f} | {s['distinct_p50']:.1f} / {s['distinct_p99']:.1f} | "
            f"{s['distinct_to_one_core']:.2f} | {s['repeated_ratio']:.2f} "
            f"({s['repeated_ratio_min']:.2f}-{s['repeated_ratio_max']:.2f}) | {s['repeated_p99']:.1f} | "
            f"{s['paced_p99']:.1f} (p50 {s['paced_p50']:.1f}, {s['paced_rps']:,.0f}/s) | "
            f"{s['distinct_cpu']:.2f} ({s['distinct_db_cpu']:.2f}) / {s['repeated_cpu']:.2f} | {s['non2xx']} |"
        )
    bare_rates = [rnd["bare_best"]["rps"] for rnd in rounds]
    lines.append(
        f"| bare signer | 1.00 | {median(bare_rates):,.0f} ({min(bare_rates):,.0f}-{max(bare_rates):,.0f}) | | "
        f"{median(bare_rates) / median(r['sign_rate'] for r in rounds):.2f} | | | | "
        f"{median(r['bare_best']['server_cpu_ms'] for r in rounds):.2f} | "
        f"{sum(x['errors'] for r in rounds for x in r['bare'])} |"
    )
    if len(labels) > 1:
        first = labels[0]
        lines += [
            "",
            f"Trees against {first} (ratio of the medians; > 1 is better for rates and ratios, "
            "< 1 better for CPU and latency):",
            "",
            "| measure | " + " | ".join(labels) + " | " + " | ".join(f"{n} / {first}" for n in labels[1:]) + " |",
            "|---|" + "---|" * (2 * len(labels) - 1),
        ]
        for key, title in [
            ("distinct_ratio", "distinct: ratio to bare signer"),
            ("distinct_rps", "distinct req/s"),
            ("distinct_cpu", "distinct: server CPU ms/req"),
            ("distinct_db_cpu", "distinct: of which PostgreSQL + Redis"),
            ("distinct_p99", "distinct: p99 ms (closed loop)"),
            ("paced_p99", "distinct: p99 ms at half rate"),
            ("repeated_ratio", "repeated: ratio to bare signer"),
            ("repeated_cpu", "repeated: server CPU ms/req"),
        ]:
            values = [summary[n][key] for n in labels]
            lines.append(
                f"| {title} | "
                + " | ".join(f"{v:,.2f}" for v in values)
                + " | "
                + " | ".join(f"{v / values[0]:.3f}" for v in values[1:])
                + " |"
            )
    samples = report["samples"]
    lines += ["", "Sample of the requests answered by each tree before its first round:", ""]
    for name in labels:
        s = samples[name]
        lines.append(
            f"- {name}: {s['status_200']}/{s['requests']} answered 200, {s['with_access']} granted something, "
            f"{s['scopes_granted']}/{s['scopes']} scopes granted ({s['push_granted']} with push); "
            f"fingerprint {s['fingerprint']}"
        )
    if len(labels) > 1:
        same = len({samples[n]["fingerprint"] for n in labels}) == 1
        lines.append(f"- identical answers in every tree: **{'yes' if same else 'NO'}**")
        if not same:
            lines += differing_answers(samples, labels)
    fastest = max(t["distinct_best"]["rps"] for rnd in rounds for t in rnd["trees"].values())
    if report["requests"] / fastest < REUSE_WINDOW_S * 1.2:
        lines.append(
            f"\nWARNING: at {fastest:,.0f} req/s a request comes back within "
            f"{report['requests'] / fastest:.2f} s: raise --requests."
        )
    return "\n".join(lines)


def stored(report: dict) -> dict:
    """The report as ``--json`` writes it: each tree's sampled answers reduced to their
    counts and fingerprint, plus the answers that differ between trees (the raw answers
    of a few hundred requests per tree would make the file a few hundred kilobytes)."""
    samples = {name: {k: v for k, v in sample.items() if k != "answers"} for name, sample in report["samples"].items()}
    return {**report, "samples": samples, "differing_answers": differing_answers(report["samples"], report["trees"])}


def differing_answers(samples: dict, labels: list[str], limit: int = 10) -> list[str]:
    """The first sampled requests that some tree answered differently from the first."""
    lines = ["", f"Requests answered differently (first {limit}: user, query, then each tree's status and access):", ""]
    first = samples[labels[0]]["answers"]
    for index, answer in enumerate(first):
        others = [samples[name]["answers"][index] for name in labels[1:]]
        if all(other == answer for other in others):
            continue
        answered = "; ".join(f"{name}: {samples[name]['answers'][index][2:]}" for name in labels)
        lines.append(f"- {answer[0]} `{answer[1]}`: {answered}")
        if len(lines) >= limit + 3:
            break
    return lines


def summarise(rounds: list[dict], labels: list[str]) -> dict:
    summary = {}
    for name in labels:
        per = [(rnd["trees"][name], rnd["bare_best"]["rps"], rnd["sign_rate"]) for rnd in rounds]
        distinct_ratios = [t["distinct_best"]["rps"] / bare for t, bare, _ in per]
        repeated_ratios = [t["repeated_best"]["rps"] / bare for t, bare, _ in per]
        summary[name] = {
            "distinct_ratio": median(distinct_ratios),
            "distinct_ratio_min": min(distinct_ratios),
            "distinct_ratio_max": max(distinct_ratios),
            "distinct_rps": median(t["distinct_best"]["rps"] for t, _, _ in per),
            "distinct_p50": median(t["distinct_best"]["p50"] for t, _, _ in per),
            "distinct_p99": median(t["distinct_best"]["p99"] for t, _, _ in per),
            "distinct_to_one_core": median(t["distinct_best"]["rps"] / sign for t, _, sign in per),
            "distinct_cpu": median(t["distinct_best"]["server_cpu_ms"] for t, _, _ in per),
            "distinct_db_cpu": median(t["distinct_best"]["db_cpu_ms"] for t, _, _ in per),
            "repeated_ratio": median(repeated_ratios),
            "repeated_ratio_min": min(repeated_ratios),
            "repeated_ratio_max": max(repeated_ratios),
            "repeated_p99": median(t["repeated_best"]["p99"] for t, _, _ in per),
            "repeated_cpu": median(t["repeated_best"]["server_cpu_ms"] for t, _, _ in per),
            "paced_rps": median(t["paced"]["rps"] for t, _, _ in per),
            "paced_p50": median(t["paced"]["p50"] for t, _, _ in per),
            "paced_p99": median(t["paced"]["p99"] for t, _, _ in per),
            "non2xx": sum(x["errors"] for t, _, _ in per for x in [*t["distinct"], *t["repeated"], t["paced"]]),
        }
    return summary


# --- The run ---------------------------------------------------------------------------
def seeded_database(
    stack: Stack, work: Path, migrator: Path, users: int, count: int
) -> tuple[dict, Path, dict, dict, list[tuple[str, str]], Path]:
    """Start PostgreSQL and Redis, make an RS256 key, migrate and seed with ``migrator``
    and write ``count`` distinct requests: (server environment with the key, key path,
    the seed plan, the seeded secrets, the requests, the file ``distinct.lua`` reads)."""
    env = server_env(stack, work)
    key = work / "rs256.key"
    manage = [tree_tools.python(migrator), "manage.py"]
    subprocess.run(
        [*manage, "registry_keys", "--key", str(key), "--algorithm", "RS256"],
        check=True,
        env=env,
        cwd=migrator,
        capture_output=True,
    )
    env["REGISTRY_KEY_PATH"] = str(key)
    log(f"migrating and seeding with {migrator}")
    subprocess.run([*manage, "migrate", "-v0"], check=True, env=env, cwd=migrator)
    plan, reach, _public = make_plan(users)
    (work / "plan.json").write_text(json.dumps(plan))
    seed = subprocess.run(
        [*manage, "shell"],
        stdin=open(HERE / "seed_many.py"),
        capture_output=True,
        text=True,
        check=True,
        env={**env, "BENCH_PLAN": str(work / "plan.json")},
        cwd=migrator,
    )
    seeded = json.loads(seed.stdout.strip().splitlines()[-1])
    entries = build_requests(plan, reach, seeded, count)
    requests_file = work / "requests.tsv"
    requests_file.write_text("".join(f"{auth}\t{path}\n" for auth, path in entries))
    return env, key, plan, seeded, entries, requests_file


def add_population_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the realm benchmarks that share this population and run."""
    parser.add_argument("--migrate-tree", help="tree that migrates and seeds (default: the newest)")
    parser.add_argument("--requests", type=int, default=20_000, help="length of the distinct-request list")
    parser.add_argument("--users", type=int, default=60, help="users with a personal access token (+ benchdev)")


def open_run(tree_args: list[str] | None, migrate_tree: str | None, name: str) -> tuple[list[Path], Path, Path, Stack]:
    """The source trees, the one that migrates, and a temporary directory with its
    ``Stack`` (close both when done)."""
    trees = tree_tools.resolve(tree_args)
    migrator = tree_tools.migrating_tree(trees, migrate_tree)
    work = Path(tempfile.mkdtemp(prefix=f"bench-jwt-{name}-"))
    os.chmod(work, 0o755)
    return trees, migrator, work, Stack(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", help="source tree to serve (repeatable; default: this checkout)")
    add_population_arguments(parser)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="8", help="comma-separated wrk connection counts (best kept)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="server processes")
    parser.add_argument("--warmup", type=float, default=5, help="untimed seconds of load before the first round")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args()
    if args.users < 50 or args.requests < 5000:
        log("note: the benchmark is specified for at least 50 users and 5,000 requests")
    trees, migrator, work, stack = open_run(args.tree, args.migrate_tree, "compare")
    labels = {tree: tree_tools.label(tree, trees) for tree in trees}
    levels = [int(c) for c in args.concurrency.split(",")]
    started = time.monotonic()
    try:
        env, key, plan, seeded, entries, requests_file = seeded_database(
            stack, work, migrator, args.users, args.requests
        )
        distinct_env = {"BENCH_REQUESTS": str(requests_file)}
        repeated_env = {"BENCH_BASIC": base64.b64encode(f"benchdev:{seeded['pats']['benchdev']}".encode()).decode()}
        sample = entries[:: max(1, len(entries) // 300)]
        pg_pids = [stack.pg_proc.pid, stack.redis_proc.pid]

        # Untimed load on the first tree: the push-created repository rows, PostgreSQL's
        # caches; and the claims of a real token for the bare signer.
        proc, base = start_tree_server(stack, trees[0], env, args.workers)
        answer = requests.get(
            base + REPEATED_QUERY, headers={"Authorization": "Basic " + repeated_env["BENCH_BASIC"]}, timeout=30
        )
        answer.raise_for_status()
        claims_path = work / "claims.json"
        claims_path.write_text(json.dumps(jwt.decode(answer.json()["token"], options={"verify_signature": False})))
        if args.warmup > 0:
            log(f"warm-up: {args.warmup:.0f} s of distinct requests on {labels[trees[0]]}")
            wrk(base + "/", "distinct.lua", distinct_env, max(levels), args.warmup)
        stack.stop(proc)
        bare_env = {**env, "BARE_KEY_PATH": str(key), "BARE_CLAIMS_PATH": str(claims_path)}

        report: dict = {
            "trees": [labels[t] for t in trees],
            # Labels, not paths: the report is committed, and paths name the machine.
            "migrated_with": labels.get(migrator, migrator.name),
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "duration": args.duration,
            "concurrency": levels,
            "requests": len(entries),
            "credentials": len(seeded["pats"]) + len(seeded["deploy_tokens"]),
            "images": len(plan["projects"]) * len(IMAGE_SUFFIXES),
            "scopes_per_request": sum(path.count("scope=") for _auth, path in entries) / len(entries),
            "load_before": load_average(),
            "samples": {},
            "rounds": [],
        }
        for number in range(1, args.rounds + 1):
            rnd: dict = {"load_before": load_average(), "trees": {}}
            log(f"round {number}/{args.rounds}: bare signer")
            proc, bare = stack.server("bare_signer:app", bare_env, args.workers, "granian")
            wrk(bare + "/", "auth.lua", repeated_env, 2, 2)
            pids = [proc.pid, *pg_pids]
            rnd["bare"] = [wrk(bare + "/", "auth.lua", repeated_env, c, args.duration, cpu_pids=pids) for c in levels]
            rnd["bare_best"] = max(rnd["bare"], key=lambda r: r["rps"])
            stack.stop(proc)
            rnd["sign_rate"] = signing_rate(key)
            # Odd rounds in the order given, even rounds reversed: of two trees, neither
            # always runs right after the bare signer or second.
            for tree in trees if number % 2 else trees[::-1]:
                name = labels[tree]
                log(f"round {number}/{args.rounds}: {name}")
                proc, base = start_tree_server(stack, tree, env, args.workers)
                if name not in report["samples"]:
                    report["samples"][name] = sample_answers(base, sample)
                    time.sleep(SETTLE_S)
                pids = [proc.pid, *pg_pids]
                result: dict = {}
                wrk(base + "/", "distinct.lua", distinct_env, max(levels), 2)  # warm-up
                result["distinct"] = []
                for c in levels:
                    time.sleep(SETTLE_S)
                    result["distinct"].append(
                        wrk(base + "/", "distinct.lua", distinct_env, c, args.duration, cpu_pids=pids)
                    )
                result["distinct_best"] = max(result["distinct"], key=lambda r: r["rps"])
                result["repeated"] = [
                    wrk(base + REPEATED_QUERY, "auth.lua", repeated_env, c, args.duration, cpu_pids=pids)
                    for c in levels
                ]
                result["repeated_best"] = max(result["repeated"], key=lambda r: r["rps"])
                time.sleep(SETTLE_S)
                best = result["distinct_best"]
                result["paced"] = paced(
                    base + "/", "distinct.lua", distinct_env, best["rps"] / 2, args.duration, best["p50"], cpu_pids=pids
                )
                stack.stop(proc)
                rnd["trees"][name] = result
            rnd["load_after"] = load_average()
            report["rounds"].append(rnd)
        report["load_after"] = load_average()
        report["elapsed_s"] = round(time.monotonic() - started)
        report["summary"] = summarise(report["rounds"], report["trees"])
        text = markdown(report)
        if args.json:
            args.json.write_text(json.dumps(stored(report), indent=2))
        print(text)
        log(f"done in {report['elapsed_s']} s")
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sys.exit(main())
