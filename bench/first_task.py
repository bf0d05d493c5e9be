"""How long from `syntaskio-dev run` (what `make run` calls after installing) to the first
task served by the dashboard API. Prints the figure; it is a measurement, not a test.

    uv run python bench/first_task.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

GATEWAY = "http://127.0.0.1:8080"
LOGIN = {"user_id": "alex@acme-msp.example", "tenant_id": "acme-msp"}


def first_task_seconds(timeout: float = 180.0) -> float:
    with tempfile.TemporaryDirectory() as data_dir:
        started = time.monotonic()
        stack = subprocess.Popen(
            [sys.executable, "-m", "syntaskio_devstack", "run", "--data-dir", data_dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while time.monotonic() - started < timeout:
                if stack.poll() is not None:
                    raise RuntimeError("the stack exited; run `make run` to see why")
                try:
                    with httpx.Client(base_url=GATEWAY, timeout=2) as client:
                        client.post("/api/v1/session/dev-login", json=LOGIN).raise_for_status()
                        if client.get("/api/v1/tasks").json()["items"]:
                            return time.monotonic() - started
                except (httpx.HTTPError, KeyError, ValueError):
                    pass
                time.sleep(0.25)
            raise TimeoutError(f"no task within {timeout:.0f}s")
        finally:
            os.killpg(stack.pid, signal.SIGINT)
            stack.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = [first_task_seconds() for _ in range(parser.parse_args().runs)]
    print(
        f"first task on the dashboard after: {', '.join(f'{r:.1f}s' for r in runs)} "
        f"(median {statistics.median(runs):.1f}s)"
    )


if __name__ == "__main__":
    main()
