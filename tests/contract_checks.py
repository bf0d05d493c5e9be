"""The check every test run ends with: the sandbox refuses what ConnectWise's documented
contract refuses, and counts it; neither the connector nor the tests may cause one."""

from __future__ import annotations

import httpx


def assert_no_contract_violations(sandbox_url: str) -> None:
    stats = httpx.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json()
    assert stats["contract_violations"] == 0, stats["recent_contract_violations"]
