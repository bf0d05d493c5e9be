"""Counts of the ConnectWise API calls the sandbox answered, for request-budget tests:
in total, by status and endpoint, and per caller (the story's budget is per
integration: 1000 requests an hour)."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from connectwise_sandbox.callers import Caller

_NUMBER_SEGMENT: Final = re.compile(r"/\d+(?=/|$)")
RATE_LIMITED: Final = 429


@dataclass
class _CallerCounts:
    member: str | None
    auth: str
    by_status: Counter[int] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "auth": self.auth,
            "requests": sum(self.by_status.values()),
            "rate_limited": self.by_status[RATE_LIMITED],
            "server_errors": _server_errors(self.by_status),
            "by_status": {str(code): n for code, n in sorted(self.by_status.items())},
            "by_path": dict(sorted(self.by_path.items())),
        }


def _server_errors(by_status: Counter[int]) -> int:
    return sum(n for code, n in by_status.items() if code >= 500)


class RequestStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_status: Counter[int] = Counter()
        self._by_endpoint: Counter[str] = Counter()
        self._by_caller: dict[str, _CallerCounts] = {}

    def record(self, method: str, path: str, status: int, caller: Caller | None = None) -> None:
        """`caller` is None for the unauthenticated login lookups, which no caller owns."""
        endpoint = f"{method} {_NUMBER_SEGMENT.sub('/{id}', path)}"
        with self._lock:
            self._by_status[status] += 1
            self._by_endpoint[endpoint] += 1
            if caller is None:
                return
            counts = self._by_caller.get(caller.key)
            if counts is None:
                counts = _CallerCounts(caller.member, caller.auth.value)
                self._by_caller[caller.key] = counts
            counts.by_status[status] += 1
            counts.by_path[endpoint] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._by_status.values()),
                "by_status": {str(code): n for code, n in sorted(self._by_status.items())},
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "rate_limited": self._by_status[RATE_LIMITED],
                "server_errors": _server_errors(self._by_status),
                "by_caller": {
                    key: counts.as_json() for key, counts in sorted(self._by_caller.items())
                },
            }

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._by_endpoint.clear()
            self._by_caller.clear()
