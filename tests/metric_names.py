"""The metrics docs/operations.md documents (its Metrics table), which the alert rules and
the dashboard may use (tests/unit/test_monitoring.py) and the running services export
(tests/e2e/test_metrics.py)."""

from __future__ import annotations

import re
from pathlib import Path

OPERATIONS = Path(__file__).parents[1] / "docs" / "operations.md"
# A histogram's series, named after it.
_SUFFIXES = ("_bucket", "_count", "_sum")


def documented_metrics() -> set[str]:
    """The metric names in operations.md's Metrics table (first column)."""
    text = OPERATIONS.read_text()
    table = text[text.index("## Metrics") : text.index("## Alerts and the dashboard")]
    names: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            names |= set(re.findall(r"`([a-z0-9_*]+)`", line.split("|")[1]))
    return names


def is_documented(name: str, documented: set[str]) -> bool:
    base = next((name.removesuffix(s) for s in _SUFFIXES if name.endswith(s)), name)
    return any(
        re.fullmatch(d.replace("*", "[a-z0-9_]+"), candidate)
        for d in documented
        for candidate in (name, base)
    )
