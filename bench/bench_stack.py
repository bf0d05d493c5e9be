"""The embedded stack for one bench run: free ports and a temporary data dir, removed
afterwards unless kept (`--keep`, for its logs/)."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syntaskio_devstack.ports import Ports
from syntaskio_devstack.stack import EmbeddedStack, StackConfig


@contextmanager
def bench_stack(prefix: str, *, keep: bool, **config: Any) -> Iterator[EmbeddedStack]:
    """The stack's broker and database are started; the caller starts the rest."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    stack = EmbeddedStack(
        StackConfig(
            data_dir=data_dir,
            ports=Ports.free(),
            database_name=f"bench_{uuid.uuid4().hex[:8]}",
            environment="test",
            **config,
        )
    )
    try:
        stack.start_data_stores()
        yield stack
    finally:
        stack.stop()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


@dataclass
class Sample:
    """A process's CPU seconds (user + system) and resident memory, from /proc."""

    cpu_seconds: float
    rss_mib: float

    @classmethod
    def of(cls, pid: int) -> Sample:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        cpu = (int(fields[11]) + int(fields[12])) / ticks
        rss_kib = next(
            int(line.split()[1])
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        return cls(cpu, rss_kib / 1024)
