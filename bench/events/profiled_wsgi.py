"""The WSGI application under cProfile, to see what a request costs inside gunicorn.

    gunicorn --pythonpath bench/events profiled_wsgi -w 1 ...

Each worker writes ``$PROFILE_DIR/worker-<pid>.prof`` when it exits (send SIGTERM to
gunicorn); read it with ``python -m pstats``."""

from __future__ import annotations

import atexit
import cProfile
import os
from pathlib import Path

from gitlab_core.wsgi import application as django_application

_profiler = cProfile.Profile()


def application(environ, start_response):
    _profiler.enable()
    try:
        return django_application(environ, start_response)
    finally:
        _profiler.disable()


@atexit.register
def _dump() -> None:
    _profiler.dump_stats(str(Path(os.environ.get("PROFILE_DIR", ".")) / f"worker-{os.getpid()}.prof"))
