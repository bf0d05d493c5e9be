"""The check test runs end with: the sandbox refuses what ConnectWise's documented
contract refuses, and counts it; neither the connector nor the tests may cause one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


def assert_none_refused(stats: Mapping[str, Any]) -> None:
    """`stats`: the sandbox's request stats (`GET /_sandbox/stats`)."""
    assert stats["contract_violations"] == 0, stats["recent_contract_violations"]


def assert_no_contract_violations(sandbox_url: str) -> None:
    assert_none_refused(httpx.get(f"{sandbox_url}/_sandbox/stats", timeout=10).json())
