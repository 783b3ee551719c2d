"""Benchmark of the local stack's stream latency: how long after an API request its change is
handled by the stream function (the "user change" line in the output). Prints numbers; the goal
is under 2 seconds with the template's 1 s batching window.

    .venv/bin/python -m local.bench [--users 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from .harness import RunningStack
from .aws.moto import free_port


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local.bench")
    parser.add_argument("--users", type=int, default=20, help="users to create and delete")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        stack = RunningStack(Path(scratch) / "stack.log", free_port(), free_port())
        latencies = {"INSERT": [], "REMOVE": []}
        api = []
        try:
            for n in range(args.users):
                for event_name in ("INSERT", "REMOVE"):
                    offset = len(stack.output())
                    started = time.monotonic()
                    if event_name == "INSERT":
                        status, user = stack.post("/create", {"email": f"bench-{n}@test.com"})
                    else:
                        status, _ = stack.post("/delete", {"id": user["id"]})
                    api.append(time.monotonic() - started)
                    assert status in (200, 201), status
                    stack.wait_for_output(f'event_name="{event_name}" user_id={user["id"]}', after=offset)
                    latencies[event_name].append(time.monotonic() - started)
        finally:
            stack.stop()

    print(f"{'measure':<28}{'n':>4}{'p50 ms':>9}{'p90 ms':>9}{'max ms':>9}")
    rows = [("API request (round trip)", api)] + [(f"request -> {e} handled", v) for e, v in latencies.items()]
    for name, values in rows:
        values = sorted(values)
        p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
        print(f"{name:<28}{len(values):>4}{statistics.median(values) * 1000:>9.0f}{p90 * 1000:>9.0f}{values[-1] * 1000:>9.0f}")


if __name__ == "__main__":
    main()
