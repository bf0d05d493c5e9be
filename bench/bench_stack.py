"""The embedded stack for one bench run: free ports and a temporary data dir, removed
afterwards unless kept (`--keep`, for its logs/)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
