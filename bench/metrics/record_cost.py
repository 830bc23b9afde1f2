"""CPU cost of what the realm and the receiver record per request (prometheus-client's
multiprocess mode: a lock and a write to a memory-mapped file per value).

    .venv/bin/python bench/metrics/record_cost.py [--iterations 200000]

Measured with ``time.process_time`` (CPU of this process only), so a busy machine slows
it less than a wall-clock benchmark; compare with the server CPU per request that
``bench/jwt_auth/compare.py`` and ``bench/events/bench_events.py`` print.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def per_call(function, iterations: int) -> float:
    """Microseconds of CPU per call, best of three."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for _ in range(iterations):
            function()
        best = min(best, (time.process_time() - started) / iterations * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="metrics-cost-") as directory:
        os.environ.update(
            {
                "DJANGO_SETTINGS_MODULE": "gitlab_core.settings",
                "DEBUG": "true",
                "VAR_DIR": directory,
                "PROMETHEUS_MULTIPROC_DIR": directory,
            }
        )
        import django

        django.setup()
        from gitlab_core import metrics

        granted = metrics.JWT_AUTH_REQUESTS.labels("granted")
        applied = metrics.REGISTRY_EVENTS.labels("push", "applied")

        def realm() -> None:  # jwt_auth/views.py: answer
            started = time.perf_counter()
            granted.inc()
            metrics.JWT_AUTH_DURATION.observe(time.perf_counter() - started)

        def receiver() -> None:  # container_registry/receiver.py: receive, one event
            applied.inc(1)

        for name, function in (("realm (counter + histogram)", realm), ("receiver (counter)", receiver)):
            print(f"{name}: {per_call(function, args.iterations):.2f} us CPU per request")


if __name__ == "__main__":
    main()
