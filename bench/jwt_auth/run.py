"""Benchmark of ``/jwt/auth`` under gunicorn with PostgreSQL and Redis, against a bare
signer under the same server, driven by ``wrk`` on the same machine.

    .venv/bin/python bench/jwt_auth/run.py [--duration 10] [--concurrency 1,2,4,8,16,32]

Starts its own PostgreSQL (``initdb`` in a temporary directory) and Redis, migrates,
seeds one developer with a personal access token, and prints a Markdown report.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import shutil
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


class Stack:
    def __init__(self, work: Path):
        self.work = work
        self.procs: list[subprocess.Popen] = []

    def popen(self, args, **kw) -> subprocess.Popen:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def stop(self, proc) -> None:
        proc.terminate()
        proc.wait(timeout=20)
        self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=20)

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
        self.popen(
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
        self.popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        time.sleep(0.3)
        return f"redis://127.0.0.1:{port}/0"

    def gunicorn(self, app: str, env: dict, workers: int) -> tuple[subprocess.Popen, str]:
        port = free_port()
        proc = self.popen(
            [
                GUNICORN,
                app,
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--pythonpath",
                f"{ROOT},{ROOT / 'bench' / 'jwt_auth'}",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
        )
        wait_http(f"http://127.0.0.1:{port}/")
        return proc, f"http://127.0.0.1:{port}"


def wrk(url: str, basic: str, connections: int, duration: int) -> dict:
    threads = min(connections, 2)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "-s",
            str(ROOT / "bench" / "jwt_auth" / "auth.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BENCH_BASIC": basic},
    ).stdout

    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "c": connections,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", default="1,2,4,8,16,32")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-jwt-"))
    os.chmod(work, 0o755)
    stack = Stack(work)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
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
        keys = {"RS256": work / "rs256.key", "ES256": work / "es256.key"}
        for alg, path in keys.items():
            subprocess.run(
                [PY, "manage.py", "registry_keys", "--key", str(path), "--algorithm", alg],
                check=True,
                env=env,
                cwd=ROOT,
                capture_output=True,
            )
        subprocess.run([PY, "manage.py", "migrate", "-v0"], check=True, env=env, cwd=ROOT)
        subprocess.run([PY, "manage.py", "createcachetable"], check=True, env=env, cwd=ROOT)
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
        report = {"workers": args.workers, "cpus": os.cpu_count(), "duration": args.duration, "runs": {}}
        for alg, key in keys.items():
            app_env = {**env, "REGISTRY_KEY_PATH": str(key)}
            proc, base = stack.gunicorn("gitlab_core.wsgi:application", app_env, args.workers)
            token = requests.get(base + query, headers={"Authorization": f"Basic {pat_basic}"}, timeout=10).json()
            claims = jwt.decode(token["token"], options={"verify_signature": False})
            claims_path = work / f"claims-{alg}.json"
            claims_path.write_text(json.dumps(claims))
            wrk(base + query, pat_basic, 2, 2)  # warm-up
            realm = [wrk(base + query, pat_basic, c, args.duration) for c in levels]
            password = [wrk(base + query, pw_basic, c, args.duration) for c in (1, 2)]
            stack.stop(proc)
            bare_env = {**env, "BARE_KEY_PATH": str(key), "BARE_CLAIMS_PATH": str(claims_path)}
            proc, bare_base = stack.gunicorn("bare_signer:app", bare_env, args.workers)
            wrk(bare_base + "/", pat_basic, 2, 2)
            bare = [wrk(bare_base + "/", pat_basic, c, args.duration) for c in levels]
            stack.stop(proc)
            report["runs"][alg] = {
                "realm": realm,
                "bare": bare,
                "password": password,
                "sign_rate": signing_rate(key),
                "token_bytes": len(token["token"]),
            }
        print(json.dumps(report, indent=2))
    finally:
        stack.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
