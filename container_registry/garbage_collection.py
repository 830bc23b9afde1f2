"""The registry's garbage collection, run from here (``registry_garbage_collect``).

Tag deletion and cleanup policies only unlink manifests; the bytes come back when the
registry's own ``garbage-collect`` runs on its storage while nothing writes to it (a
push racing the collection can lose blobs it just uploaded). So the collection refuses
to start unless the registry at ``REGISTRY_API_URL`` is stopped (nothing answers) or in
read-only mode (``registry_config --read-only``); a dry run, which only reads, may run
beside a writable registry (its counts are then a snapshot). Then it runs the binary
(``REGISTRY_BINARY``, default ``registry`` or ``docker-registry`` on ``PATH``) on the
given config, and reports what it removed and the storage size before and after (the
filesystem driver's ``rootdirectory``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings

from container_registry.client import READ_ONLY, get_client
from container_registry.errors import RegistryError
from container_registry.registry_config import read_config
from gitlab_core.errors import ServiceError

BINARY_NAMES = ("registry", "docker-registry")
# "<n> blobs marked, <n> blobs and <n> manifests eligible for deletion" (distribution 2.8).
_SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
# Progress lines are reported at most this often.
PROGRESS_INTERVAL = 2.0
TAIL_LINES = 20


@dataclass(frozen=True)
class CollectionReport:
    blobs_marked: int
    blobs_removed: int
    manifests_removed: int
    size_before: int
    size_after: int
    dry_run: bool

    @property
    def bytes_freed(self) -> int:
        return max(0, self.size_before - self.size_after)


def gc_error(message: str) -> ServiceError:
    return ServiceError(400, {"message": message})


def registry_binary() -> str:
    """The registry program: ``REGISTRY_BINARY``, or the first of ``BINARY_NAMES`` on ``PATH``."""
    configured = settings.REGISTRY_BINARY
    found = shutil.which(configured) if configured else next(filter(None, map(shutil.which, BINARY_NAMES)), None)
    if not found:
        wanted = configured or " or ".join(BINARY_NAMES)
        raise gc_error(f"the registry program ({wanted}) was not found; set REGISTRY_BINARY to its path")
    return found


def storage_root(config_path: str | Path) -> Path:
    """The filesystem driver's ``rootdirectory`` of a registry config file."""
    filesystem = read_config(config_path).get("storage", {})
    filesystem = filesystem.get("filesystem") if isinstance(filesystem, dict) else None
    root = filesystem.get("rootdirectory") if isinstance(filesystem, dict) else None
    if not isinstance(root, str) or not root:
        raise gc_error(
            f"{config_path} has no storage.filesystem.rootdirectory (only the filesystem driver is supported)"
        )
    return Path(root)


def registry_state() -> str:
    """``"stopped"`` (nothing answers at ``REGISTRY_API_URL``), ``"read-only"`` or
    ``"writable"``; raises ``ServiceError`` when the registry answers but cannot be told."""
    url = settings.REGISTRY_API_URL
    try:
        requests.get(f"{url.rstrip('/')}/v2/", timeout=settings.REGISTRY_REQUEST_TIMEOUT)
    except requests.ConnectionError as exc:
        # Only a refused connection means nothing listens: a timeout, a TLS or proxy
        # failure may hide a registry that is running and writing.
        if _refused(exc):
            return "stopped"
        raise gc_error(f"cannot tell whether the registry at {url} is stopped: {exc.__class__.__name__}")
    except requests.RequestException as exc:
        raise gc_error(f"cannot tell whether the registry at {url} accepts writes: {exc.__class__.__name__}")
    try:
        state = get_client().delete_probe()
    except RegistryError as exc:
        raise gc_error(f"cannot tell whether the registry at {url} accepts writes: {exc}")
    return "read-only" if state == READ_ONLY else "writable"


def _refused(exc: BaseException) -> bool:
    """The connection was refused (found anywhere in the exception's chain of causes)."""
    if isinstance(exc, requests.Timeout | requests.exceptions.SSLError | requests.exceptions.ProxyError):
        return False
    seen: set[int] = set()
    pending = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        pending.extend(
            [
                current.__cause__,
                current.__context__,
                *[a for a in getattr(current, "args", ()) if isinstance(a, BaseException)],
            ]
        )
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
    return False


def directory_size(root: Path) -> int:
    """Bytes of every regular file below ``root`` (0 when it does not exist)."""
    total = 0
    stack = [Path(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except FileNotFoundError:
            continue
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_size
    return total


def collect_garbage(
    *,
    config_path: str | Path,
    delete_untagged: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> CollectionReport:
    """Run ``garbage-collect`` on ``config_path`` and report what it removed.

    ``delete_untagged`` also removes manifests no tag points at (and blobs only they
    use): among them the dummy manifests tag deletion leaves behind, but also images
    pushed by digest only, and the children of multi-arch images in distribution 2.8.
    Raises ``ServiceError`` when the registry accepts writes (a dry run too: its counts
    would be wrong under a writer) or the run fails.
    """
    progress = progress or (lambda line: None)
    binary = registry_binary()
    root = storage_root(config_path)
    state = registry_state()
    if state == "writable":
        raise gc_error(
            f"the registry at {settings.REGISTRY_API_URL} accepts writes: stop it, or restart it with a "
            "read-only config (`manage.py registry_config --read-only ...`), before collecting garbage"
        )
    progress(f"registry {state}; storage {root}")
    size_before = directory_size(root)
    progress(f"storage holds {size_before} bytes; running {binary} garbage-collect")
    args = [binary, "garbage-collect", str(config_path)]
    if delete_untagged:
        args.append("--delete-untagged")
    if dry_run:
        args.append("--dry-run")
    marked, blobs, manifests = map(int, _SUMMARY.search(_run(args, progress)).groups())
    return CollectionReport(
        blobs_marked=marked,
        blobs_removed=blobs,
        manifests_removed=manifests,
        size_before=size_before,
        size_after=directory_size(root),
        dry_run=dry_run,
    )


def _run(args: list[str], progress: Callable[[str], None]) -> str:
    """Run the collection, passing a line of its output to ``progress`` every few
    seconds; return its summary line. It prints a line per blob, so only the summary
    and the last lines of its log (kept to explain a failure) are held."""
    # The registry reads every REGISTRY_* variable as an override of its config file.
    env = {name: value for name, value in os.environ.items() if not name.startswith("REGISTRY_")}
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=env, text=True
        )
        summary, tail, shown = "", deque(maxlen=TAIL_LINES), 0.0
        for line in process.stdout:
            tail.append(line)
            if _SUMMARY.search(line):
                summary = line
            now = time.monotonic()
            if now - shown >= PROGRESS_INTERVAL and line.strip():
                shown = now
                progress(line.strip())
        if process.wait() != 0:
            log.seek(0)
            errors = deque(log, maxlen=TAIL_LINES)
            raise gc_error(f"garbage-collect exited with {process.returncode}:\n{''.join(errors)}")
    if not summary:
        raise gc_error(f"garbage-collect printed no summary:\n{''.join(tail)}")
    return summary
