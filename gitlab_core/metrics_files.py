"""Stale files in ``PROMETHEUS_MULTIPROC_DIR``.

prometheus-client's multiprocess mode keeps one file per process and kind of metric
(``counter_<pid>.db``...) and asks for a clean directory when the service starts. The
web server and the Celery worker share the directory and may start in any order, so a
start removes only the files of processes that no longer run. This module does not
import prometheus_client, which would add a file of its own.

    python -m gitlab_core.metrics_files   (scripts/web.sh; DJANGO_SETTINGS_MODULE set)
"""

from __future__ import annotations

import os
from pathlib import Path


def clear_stale_files(directory: str | Path) -> int:
    """Remove the files of processes that are gone; returns how many."""
    removed = 0
    for file in Path(directory).glob("*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _running(int(pid)):
            file.unlink(missing_ok=True)
            removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


if __name__ == "__main__":
    from django.conf import settings

    clear_stale_files(settings.PROMETHEUS_MULTIPROC_DIR)
