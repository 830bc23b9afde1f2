"""pytest plugin: name the database sessions that outlive the test run.

On PostgreSQL the test database can be dropped only when nobody is connected to it;
otherwise pytest-django warns "database ... is being accessed by other users" and leaves
it. When that happens, this plugin prints each session still connected: its last
statement, its state, and the process that holds it (this test process, with its
threads, or another one), so that the test that left it can be found. It prints nothing
when no session is left.
"""

from __future__ import annotations

import collections
import gc
import os
import socket
import sys
import threading
import types
from pathlib import Path


def pytest_sessionfinish(session) -> None:
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, connections

    if not settings.configured:
        return
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        return
    # The test database's name: NAME itself when its teardown failed (it is left set).
    current = connection.settings_dict["NAME"]
    names = [current, connection.settings_dict.get("TEST", {}).get("NAME") or f"test_{current}"]
    try:
        # A connection of our own: pytest-django blocks Django's outside the tests.
        with connection.get_new_connection(connection.get_connection_params()) as raw:
            rows = raw.execute(
                "SELECT client_port, state, backend_start, left(query, 200) FROM pg_stat_activity "
                "WHERE datname = ANY(%s) AND datname LIKE 'test%%' AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()",
                [names],
            ).fetchall()
    except Exception as exc:  # noqa: BLE001 -- a diagnostic must not fail the run
        print(f"\nlingering database sessions: not listed ({exc.__class__.__name__})")
        return
    if not rows:
        return
    print(f"\n{len(rows)} session(s) still connected to the test database:")
    for port, state, started, query in rows:
        print(f"  started {started:%H:%M:%S}, {state}, last statement: {query!r}, held by {_owner(port)}")
    if any(_owner(port).startswith("this test process") for port, *_ in rows):
        print(f"  threads of this process: {sorted(t.name for t in threading.enumerate())}")
        for name, peer in _served_clients():
            if peer is None:
                print(f"  {name} still runs, but its client has disconnected")
                continue
            print(f"  {name} serves a connection from port {peer}, held by {_owner(peer)}")
            if _owner(peer).startswith("this test process"):
                print(f"  the client end of that connection is held by: {_holders(peer)}")


def _served_clients() -> list[tuple[str, int | None]]:
    """(thread name, client port or None when the client is gone) of the live server's request threads still serving a
    connection (a keep-alive client that never closed it keeps the thread, and the
    thread's database session, until the run ends)."""
    served = []
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident)
        while frame is not None:
            request = frame.f_locals.get("request") if frame.f_code.co_name == "process_request_thread" else None
            if isinstance(request, socket.socket):
                try:
                    peer = request.getpeername()[1]
                except OSError:
                    peer = None  # the client has gone; the thread is finishing
                served.append((thread.name, peer))
                break
            frame = frame.f_back
    return served


def _owner(port: int | None) -> str:
    """The process whose socket has local port ``port`` (Linux /proc), or "unknown"."""
    if port is None:
        return "unknown (Unix socket)"
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if wanted & _fd_links(pid):
            if int(pid) == os.getpid():
                return "this test process"
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return f"process {pid} ({command.strip()[:120]})"
    return "unknown"


def _fd_links(pid: str) -> set[str]:
    links = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return links
    for fd in fds:
        try:
            links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile (the listing's own descriptor, for one)
    return links


def _holders(port: int) -> str:
    """The chain of objects that keep this process's socket with local port ``port``
    alive (socket <- connection <- pool <- ...), by type, through containers."""
    everything = gc.get_objects()
    for candidate in everything:
        if not isinstance(candidate, socket.socket) or candidate.fileno() == -1:
            continue
        try:
            if candidate.getsockname()[1] != port:
                continue
        except OSError:
            continue
        chain, current, seen = [], candidate, {id(everything)}
        for _step in range(20):
            seen.add(id(current))
            referrers = [
                r for r in gc.get_referrers(current) if id(r) not in seen and not isinstance(r, types.FrameType)
            ]
            seen.add(id(referrers))  # this list refers to them too
            if not referrers:
                break
            current = referrers[0]
            if not isinstance(current, (dict, list, tuple, set, collections.deque)):
                chain.append(f"{type(current).__module__}.{type(current).__qualname__}")
                if len(chain) == 9:
                    break
        return " <- ".join(["socket", *chain])
    return "no socket found"
