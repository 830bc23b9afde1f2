"""Benchmark of ``/jwt/auth`` under the production server (granian, ``scripts/web.sh``;
``--server gunicorn`` for comparison) with PostgreSQL and Redis, against a bare signer
under the same server, driven by ``wrk`` on the same machine.

    .venv/bin/python bench/jwt_auth/run.py [--duration 10] [--concurrency 1,2,4,8,16,32]
        [--variants realm,unprepared,baseline --baseline-tree DIR] [--algorithms RS256,ES256]

Starts its own PostgreSQL (``initdb`` in a temporary directory) and Redis, migrates,
seeds one developer with a personal access token, measures each realm variant, the
password case and the bare signer at every concurrency, then each again paced at half
its maximum rate (the p99 goal), and prints JSON on stdout and Markdown tables on
stderr. ``--baseline-tree``: e.g. ``git archive <commit> | tar -x -C DIR``.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
import requests

ROOT = Path(__file__).resolve().parents[2]
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SCOPE = "repository:bench/group/app/img:pull,push"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def _terminate(proc: subprocess.Popen) -> None:
    # Servers run in their own session (scripts/web.sh execs granian, which forks).
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    proc.wait(timeout=30)


class Stack:
    def __init__(self, work: Path):
        self.work = work
        self.procs: list[subprocess.Popen] = []

    def popen(self, args, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc) -> None:
        _terminate(proc)
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            _terminate(proc)

    def postgres(self) -> str:
        data = self.work / "pg"
        data.mkdir()
        shutil.chown(self.work, "postgres")
        shutil.chown(data, "postgres")
        as_pg = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*as_pg, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust"], check=True, capture_output=True
        )
        port = free_port()
        self.pg_proc = self.popen(
            [
                *as_pg,
                str(PG_BIN / "postgres"),
                "-D",
                str(data),
                "-p",
                str(port),
                "-k",
                str(data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=200",
            ]
        )
        for _ in range(100):
            if (
                subprocess.run(
                    [
                        *as_pg,
                        str(PG_BIN / "pg_isready") if (PG_BIN / "pg_isready").exists() else "pg_isready",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                    ],
                    capture_output=True,
                ).returncode
                == 0
            ):
                break
            time.sleep(0.2)
        subprocess.run([*as_pg, "createdb", "-h", "127.0.0.1", "-p", str(port), "bench"], check=True)
        return f"postgres://postgres@127.0.0.1:{port}/bench"

    def redis(self) -> str:
        port = free_port()
        self.redis_proc = self.popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        )
        time.sleep(0.3)
        return f"redis://127.0.0.1:{port}/0"

    def server(self, app: str, env: dict, workers: int, kind: str, root: Path = ROOT) -> tuple[subprocess.Popen, str]:
        """``app`` under the production server (granian through ``scripts/web.sh``, access
        log off) or gunicorn (sync workers), ``workers`` processes."""
        port = free_port()
        pythonpath = f"{root}:{ROOT / 'bench' / 'jwt_auth'}"
        if kind == "granian":
            args = [str(ROOT / "scripts" / "web.sh"), app]
            env = {**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers), "WEB_ACCESS_LOG": "false"}
        else:
            args = [GUNICORN, app, "-w", str(workers), "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
        proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**env, "PYTHONPATH": pythonpath},
            cwd=root,
            start_new_session=True,
        )
        self.procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/")
        return proc, f"http://127.0.0.1:{port}"


_TICK = os.sysconf("SC_CLK_TCK")


def _tree_cpu(root_pids: list[int]) -> float:
    """CPU seconds used so far by these processes and all their descendants, including
    descendants that already exited (their time is in their parent's cutime/cstime)."""
    parents: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents.setdefault(int(fields[1]), []).append(pid)
        times[pid] = sum(int(x) for x in fields[11:15]) / _TICK
    total, todo = 0.0, list(root_pids)
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0.0)
        todo.extend(parents.get(pid, []))
    return total


def wrk(url: str, basic: str, connections: int, duration: int, delay_ms: float = 0, cpu_pids=()) -> dict:
    """Closed loop (each connection sends its next request when answered); with
    ``delay_ms`` each connection waits that long first, which paces the total rate."""
    threads = min(connections, 2)
    script = "paced.lua" if delay_ms else "auth.lua"
    server_before = _tree_cpu(list(cpu_pids))
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "jwt_auth" / script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_BASIC": basic, "BENCH_DELAY_MS": str(delay_ms)},
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    server_cpu = _tree_cpu(list(cpu_pids)) - server_before
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    requests_done = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "c": connections,
        # CPU per request of the server side (web server, PostgreSQL, Redis) and of wrk:
        # robust against other load on a shared machine, unlike the rates.
        "server_cpu_ms": round(server_cpu / max(requests_done, 1) * 1000, 3),
        "wrk_cpu_ms": round(client_cpu / max(requests_done, 1) * 1000, 3),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def paced(url: str, basic: str, rate: float, duration: int, p50_ms: float, cpu_pids=()) -> dict:
    """About ``rate`` requests per second from connections that each pause between
    their requests (wrk's ``delay``, whole milliseconds): enough connections that a
    connection's cycle is about 20 ms, so the truncation of the pause to whole
    milliseconds moves the rate by a few per cent at most. The pause is calibrated by a
    2-second trial, since a cycle is the pause plus the latency. Returns the achieved
    rate with the latencies."""
    connections = max(4, math.ceil(rate * 0.020))
    cycle_ms = connections / rate * 1000
    delay = max(round(cycle_ms - p50_ms), 1)
    trial = wrk(url, basic, connections, 2, delay_ms=delay)
    latency = connections / max(trial["rps"], 1) * 1000 - delay
    delay = max(round(cycle_ms - latency), 1)
    result = wrk(url, basic, connections, duration, delay_ms=delay, cpu_pids=cpu_pids)
    result["target_rps"] = round(rate, 1)
    return result


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def signing_rate(key_path: Path, seconds: float = 2.0) -> float:
    code = f"""
import time, jwt
from cryptography.hazmat.primitives import serialization
from jwt_auth.keys import algorithm_for
key = serialization.load_pem_private_key(open({str(key_path)!r}, 'rb').read(), password=None)
alg = algorithm_for(key); n = 0; end = time.perf_counter() + {seconds}
while time.perf_counter() < end:
    jwt.encode({{'a': n}}, key, algorithm=alg); n += 1
print(n / {seconds})
"""
    out = subprocess.run(
        [PY, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "gitlab_core.settings"},
    )
    return float(out.stdout.strip())


# Realm variants: what each change gives, measured in the same run.
#   realm      the service as deployed (gitlab_core.wsgi)
#   no-reuse   the realm with REALM_DECISION_CACHE_SECONDS=0: every request resolves the
#              credential and the permissions (what distinct requests cost)
#   unprepared the realm with HOT_QUERIES_PREPARED=false (PostgreSQL plans every query)
#   baseline   the code of --baseline-tree (for example the first measured version,
#              exported with ``git archive``), under the same server and database
VARIANTS = {
    "realm": ("gitlab_core.wsgi:application", {}),
    "no-reuse": ("gitlab_core.wsgi:application", {"REALM_DECISION_CACHE_SECONDS": "0"}),
    "unprepared": ("gitlab_core.wsgi:application", {"HOT_QUERIES_PREPARED": "false"}),
    "baseline": ("gitlab_core.wsgi:application", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", default="1,2,4,8,16,32")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--variants", default="realm,no-reuse", help=f"comma-separated, of {','.join(VARIANTS)}")
    parser.add_argument("--server", default="granian", choices=["granian", "gunicorn"])
    parser.add_argument("--baseline-tree", help="source tree for the 'baseline' variant")
    parser.add_argument("--algorithms", default="RS256,ES256")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    variants = args.variants.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-jwt-"))
    os.chmod(work, 0o755)
    stack = Stack(work)
    try:
        env = server_env(stack, work)
        keys = {alg: work / f"{alg.lower()}.key" for alg in args.algorithms.split(",")}
        for alg, path in keys.items():
            subprocess.run(
                [PY, "manage.py", "registry_keys", "--key", str(path), "--algorithm", alg],
                check=True,
                env=env,
                cwd=ROOT,
                capture_output=True,
            )
        subprocess.run([PY, "manage.py", "migrate", "-v0"], check=True, env=env, cwd=ROOT)
        seed = subprocess.run(
            [PY, "manage.py", "shell"],
            stdin=open(ROOT / "bench" / "jwt_auth" / "seed.py"),
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=ROOT,
        )
        pat = seed.stdout.strip().splitlines()[-1]
        pat_basic = base64.b64encode(f"benchdev:{pat}".encode()).decode()
        pw_basic = base64.b64encode(b"benchdev:bench-password-123").decode()
        query = f"/jwt/auth?service=container_registry&scope={SCOPE}"
        report = {
            "server": args.server,
            "workers": args.workers,
            "cpus": os.cpu_count(),
            "duration": args.duration,
            "load_before": load_average(),
            "runs": {},
        }
        for alg, key in keys.items():
            run: dict = {"realm": {}, "paced": {}}
            app_env = {**env, "REGISTRY_KEY_PATH": str(key)}
            # The password case without decision reuse: what its hasher costs per decision.
            no_reuse_env = {**app_env, "REALM_DECISION_CACHE_SECONDS": "0"}
            proc, base = stack.server("gitlab_core.wsgi:application", no_reuse_env, args.workers, args.server)
            token = requests.get(base + query, headers={"Authorization": f"Basic {pat_basic}"}, timeout=10).json()
            claims = jwt.decode(token["token"], options={"verify_signature": False})
            claims_path = work / f"claims-{alg}.json"
            claims_path.write_text(json.dumps(claims))
            run["token_bytes"] = len(token["token"])
            wrk(base + query, pat_basic, 2, 2)
            pids = [proc.pid, stack.pg_proc.pid, stack.redis_proc.pid]
            run["password"] = [wrk(base + query, pw_basic, c, args.duration, cpu_pids=pids) for c in (1, 2)]
            stack.stop(proc)
            for variant in variants:
                app, extra = VARIANTS[variant]
                root = Path(args.baseline_tree) if variant == "baseline" else ROOT
                proc, base = stack.server(app, {**app_env, **extra}, args.workers, args.server, root=root)
                wrk(base + query, pat_basic, 2, 2)  # warm-up
                pids = [proc.pid, stack.pg_proc.pid, stack.redis_proc.pid]
                results = [wrk(base + query, pat_basic, c, args.duration, cpu_pids=pids) for c in levels]
                run["realm"][variant] = results
                best = max(results, key=lambda r: r["rps"])
                # Latency at half the maximum rate (goal: p99 under 20 ms).
                run["paced"][variant] = paced(
                    base + query, pat_basic, best["rps"] / 2, args.duration, results[0]["p50"], cpu_pids=pids
                )
                stack.stop(proc)
            bare_env = {**env, "BARE_KEY_PATH": str(key), "BARE_CLAIMS_PATH": str(claims_path)}
            proc, bare_base = stack.server("bare_signer:app", bare_env, args.workers, args.server)
            wrk(bare_base + "/", pat_basic, 2, 2)
            pids = [proc.pid, stack.pg_proc.pid, stack.redis_proc.pid]
            run["bare"] = [wrk(bare_base + "/", pat_basic, c, args.duration, cpu_pids=pids) for c in levels]
            best = max(run["bare"], key=lambda r: r["rps"])
            run["paced"]["bare"] = paced(
                bare_base + "/", pat_basic, best["rps"] / 2, args.duration, run["bare"][0]["p50"], cpu_pids=pids
            )
            stack.stop(proc)
            run["sign_rate"] = signing_rate(key)
            report["runs"][alg] = run
        report["load_after"] = load_average()
        print(json.dumps(report, indent=2))
        print(markdown(report), file=sys.stderr)
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


def server_env(stack: Stack, work: Path) -> dict[str, str]:
    """The environment the servers under test run with: this run's PostgreSQL and Redis,
    production settings, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_") and k != "PYTHONPATH"}
    env.update(
        DATABASE_URL=stack.postgres(),
        CACHE_URL=stack.redis(),
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        VAR_DIR=str(work / "var"),
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="gitlab_core.settings",
        ALLOWED_HOSTS="127.0.0.1",
    )
    return env


def markdown(report: dict) -> str:
    """The result tables, in Markdown (the realm section of docs/performance.md)."""
    lines = []
    for alg, run in report["runs"].items():
        bare_max = max(r["rps"] for r in run["bare"])
        lines += [
            f"\n{alg} (bare signer max {bare_max:.0f}/s, one-core signing {run['sign_rate']:.0f}/s)\n",
            "| variant | conc. | req/s | p50 ms | p99 ms | ratio to bare | server CPU ms/req | wrk CPU ms/req |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for variant, results in [*run["realm"].items(), ("bare", run["bare"])]:
            for r, b in zip(results, run["bare"], strict=True):
                lines.append(
                    f"| {variant} | {r['c']} | {r['rps']:.0f} | {r['p50']:.1f} | {r['p99']:.1f} | "
                    f"{r['rps'] / b['rps']:.2f} | {r['server_cpu_ms']:.2f} | {r['wrk_cpu_ms']:.2f} |"
                )
        lines += [
            "",
            "| variant | max req/s | ratio of maxima | paced at | achieved | p50 ms | p99 ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for variant, p in run["paced"].items():
            results = run["realm"].get(variant, run["bare"])
            top = max(r["rps"] for r in results)
            lines.append(
                f"| {variant} | {top:.0f} | {top / bare_max:.2f} | {p['target_rps']:.0f} | {p['rps']:.0f} | "
                f"{p['p50']:.1f} | {p['p99']:.1f} |"
            )
        pw = run["password"]
        rates = ", ".join(f"c={r['c']} {r['rps']:.1f}/s p50 {r['p50']:.0f} ms" for r in pw)
        lines.append(f"\npassword, decisions not reused: {rates}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
