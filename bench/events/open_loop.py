"""An open-loop HTTP sender: requests leave on a fixed schedule, whatever the server does.

A closed-loop client (wrk, or threads that send the next request when the last one is
answered) slows down with the server and so hides queueing ("coordinated omission").
Here request ``i`` is due at ``start + i / rate`` and its latency counts from that due
time, so a server that falls behind shows it in the percentiles. Plain asyncio streams
and pre-built request bytes keep the sender's own cost small.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    failed: int = 0
    elapsed: float = 0.0
    acknowledged: list[int] = field(default_factory=list)  # indexes answered with 2xx
    failures: Counter = field(default_factory=Counter)  # status code or exception name


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Status and whether the connection may be reused."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip().lower()
    length = headers.get("content-length")
    if length is not None:
        await reader.readexactly(int(length))
        return status, headers.get("connection") != "close"
    await reader.read()  # body until the server closes
    return status, False


async def _run(
    host: str, port: int, build: Callable[[int], bytes], rate: float, duration: float, connections: int
) -> Result:
    loop = asyncio.get_running_loop()
    result = Result()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    slots = asyncio.Semaphore(connections)
    start = loop.time() + 0.2

    async def send(index: int) -> None:
        due = start + index / rate
        payload = build(index)  # built before the due time: not part of the latency
        await asyncio.sleep(max(0.0, due - loop.time()))
        async with slots:
            try:
                try:
                    reader, writer, reused = *idle.pop(), True
                except IndexError:
                    reader, writer, reused = *await asyncio.open_connection(host, port), False
                try:
                    writer.write(payload)
                    status, reusable = await _read_response(reader)
                except (OSError, asyncio.IncompleteReadError):
                    if not reused:
                        raise
                    # The server closed an idle keep-alive connection: send again on a
                    # new one, as Go's HTTP client does (the event id makes it harmless).
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    writer.write(payload)
                    status, reusable = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.failed += 1
                result.failures[type(exc).__name__] += 1
                return
            if reusable:
                idle.append((reader, writer))
            else:
                writer.close()
        result.latencies.append(loop.time() - due)
        if 200 <= status < 300:
            result.ok += 1
            result.acknowledged.append(index)
        else:
            result.failed += 1
            result.failures[status] += 1

    total = int(rate * duration)
    await asyncio.gather(*(send(i) for i in range(total)))
    result.elapsed = loop.time() - start
    for _reader, writer in idle:
        writer.close()
    return result


def open_loop(
    *, host: str, port: int, build: Callable[[int], bytes], rate: float, duration: float, connections: int = 64
) -> Result:
    """Send ``rate * duration`` requests (``build(i)`` gives request ``i``'s bytes) at a
    constant ``rate``, over at most ``connections`` connections at once, and return the
    latency of each answered one from its due time."""
    return asyncio.run(_run(host, port, build, rate, duration, connections))
