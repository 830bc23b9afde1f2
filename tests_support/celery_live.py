"""A real Celery worker and beat for ``@pytest.mark.celery_live`` tests.

Both run as subprocesses (``celery -A gitlab_core worker`` / ``beat``) against the test
database and the Redis broker of ``CELERY_BROKER_URL``: nothing runs eagerly. The test
must use ``transaction=True`` so that the subprocesses see its rows. Tests marked
``celery_live`` are skipped unless the broker is ``redis://`` (see
``tests_support.registry_fixtures``).

    with live_celery(beat=True, env={"CLEANUP_POLICY_CRON_MINUTE": "*"}) as celery:
        ...  # poll the database
        celery.log()  # worker and beat output, for assertion messages
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

STOP_TIMEOUT = 15


def database_url() -> str:
    """The URL of the database the tests use right now (the test database)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db.get("HOST") or "localhost"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{host}{port}/{db['NAME']}"


def child_environment(work_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the worker and beat: the test database, the broker, and the
    registry settings the test is using (they may have been changed by fixtures)."""
    # PROMETHEUS_MULTIPROC_DIR: the child's own, under its VAR_DIR, unless ``extra`` says.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "gitlab_core.settings",
            "DATABASE_URL": database_url(),
            "VAR_DIR": str(work_dir),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "REGISTRY_API_URL": settings.REGISTRY_API_URL,
            "REGISTRY_HOST_PORT": settings.REGISTRY_HOST_PORT,
            "REGISTRY_ISSUER": settings.REGISTRY_ISSUER,
            "REGISTRY_KEY_PATH": str(settings.REGISTRY_KEY_PATH),
            "REGISTRY_NOTIFICATION_SECRET": settings.REGISTRY_NOTIFICATION_SECRET,
        }
    )
    if getattr(settings, "REGISTRY_CERT_PATH", None):
        env["REGISTRY_CERT_PATH"] = str(settings.REGISTRY_CERT_PATH)
    env.update(extra or {})
    return env


@dataclass
class LiveCelery:
    work_dir: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def _celery(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", "gitlab_core", *args]

    def purge(self) -> None:
        """Drop messages other runs left in the broker's queue."""
        subprocess.run(
            self._celery("purge", "-f"), env=self.env, cwd=settings.BASE_DIR, capture_output=True, timeout=60
        )

    def start(self, name: str, *args: str) -> None:
        log = (self.work_dir / f"{name}.log").open("ab")
        self.processes[name] = subprocess.Popen(
            self._celery(*args),
            env=self.env,
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.processes.values())

    def log(self) -> str:
        parts = []
        for name in self.processes:
            path = self.work_dir / f"{name}.log"
            if path.exists():
                parts.append(f"--- {name} ---\n{path.read_text(errors='replace')[-20000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT)


@contextlib.contextmanager
def live_celery(*, beat: bool = False, env: dict[str, str] | None = None, concurrency: int = 2) -> Iterator[LiveCelery]:
    """Start a worker (and beat) for the duration of the ``with`` block."""
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        raise RuntimeError("live Celery tests need CELERY_BROKER_URL=redis://...")
    with tempfile.TemporaryDirectory(prefix="celery-live-") as tmp:
        celery = LiveCelery(work_dir=Path(tmp), env=child_environment(Path(tmp), env))
        celery.purge()
        celery.start(
            "worker",
            "worker",
            "--loglevel=INFO",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=live-{os.getpid()}@%h",
        )
        if beat:
            celery.start("beat", "beat", "--loglevel=INFO", f"--schedule={Path(tmp) / 'beat-schedule'}")
        try:
            yield celery
        finally:
            celery.stop()
