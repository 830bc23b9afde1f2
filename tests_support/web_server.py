"""A real granian (``scripts/web.sh``) serving the application, for tests that need the
production server: its WSGI doors, its environment and its log output."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests_support.celery_live import child_environment
from tests_support.registry import free_port, port_answers, wait_until

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class WebServer:
    base: str
    log_path: Path

    def log(self) -> str:
        """Everything the server wrote (stdout and stderr: access log, JSON logs)."""
        return self.log_path.read_text(errors="replace")


@contextmanager
def granian(work_dir: Path, env: dict[str, str] | None = None) -> Iterator[WebServer]:
    """Start ``scripts/web.sh`` (one process, two threads) on a free port with the test
    database (``child_environment``) and ``env``; stop it afterwards. Ready once the port
    accepts connections: the database may be unreachable on purpose."""
    port = free_port()
    full_env = child_environment(
        work_dir,
        {
            "PORT": str(port),
            "WEB_CONCURRENCY": "1",
            "WEB_THREADS": "2",
            "ALLOWED_HOSTS": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            **(env or {}),
        },
    )
    log_path = work_dir / "web.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "web.sh")], env=full_env, stdout=log, stderr=log, start_new_session=True
        )
        try:

            def listening() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"web server exited: {log_path.read_text()[-2000:]}")
                return port_answers(port)

            wait_until(listening, timeout=30, message="granian listening")
            yield WebServer(base=f"http://127.0.0.1:{port}", log_path=log_path)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
