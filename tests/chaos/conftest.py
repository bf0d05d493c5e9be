"""The chaos suite's report: how long each scenario took to recover, at the end of the
run's output (a figure, never a pass/fail threshold)."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from test_recovery import RECOVERY

    if RECOVERY:
        terminalreporter.section("chaos: recovery times")
        for scenario, seconds in RECOVERY.items():
            terminalreporter.write_line(f"{scenario}: {seconds:.1f} s")
