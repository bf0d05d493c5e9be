"""The abuse suite's report: the second user's `/tasks` latency, quiet and under each
kind of abuse, at the end of the run's output (a figure, never a pass/fail threshold)."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from test_one_user_cannot_slow_another import LATENCY

    quiet = LATENCY.get("quiet")
    if not LATENCY:
        return
    terminalreporter.section("abuse: another user's GET /api/v1/tasks")
    for phase, latency in LATENCY.items():
        against = f" ({latency.p99_ms / quiet.p99_ms:.1f}x quiet)" if quiet else ""
        terminalreporter.write_line(
            f"{phase}: {latency.requests} requests, p50 {latency.p50_ms:.1f} ms, "
            f"p99 {latency.p99_ms:.1f} ms{against}"
        )
