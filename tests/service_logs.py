"""What the running services logged, read back for tests' messages and warnings."""

from __future__ import annotations

import json

from syntaskio_devstack.stack import EmbeddedStack


def timed_out_runs(system: EmbeddedStack, last: int = 2) -> list[str]:
    """The connector's latest "sync timed out" log records: when, and where each run was
    stuck (the traceback of the await the run time limit cancelled)."""
    connector = system.processes.get("connector")
    if connector is None or not connector.log_path.exists():
        return []
    found = []
    for line in connector.log_path.read_text(errors="replace").splitlines():
        if '"sync timed out"' in line:
            record = json.loads(line)
            found.append(f"{record['time']} {record.get('exc_info', '')[-3000:]}")
    return found[-last:]
