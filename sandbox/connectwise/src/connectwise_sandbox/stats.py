"""Counts of the ConnectWise API calls the sandbox answered, for request-budget tests:
in total, by status and endpoint, and per caller (the story's budget is per
integration: 1000 requests an hour).

Contract violations — 400s whose cause is the request's form against the documented
contract (`CwError.contract`: an undocumented parameter, field or body member, a
read-only field, a missing required member, a malformed query) — are counted too, in
total and per caller, with the last `RECENT_VIOLATIONS` of each kept (method, path,
message): a well-behaved client causes none."""

from __future__ import annotations

import re
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Final

from connectwise_sandbox.callers import Caller

_NUMBER_SEGMENT: Final = re.compile(r"/\d+(?=/|$)")
RATE_LIMITED: Final = 429
RECENT_VIOLATIONS: Final = 20


@dataclass(frozen=True)
class Violation:
    method: str
    path: str
    message: str
    caller: str | None

    def as_json(self, *, with_caller: bool) -> dict[str, Any]:
        shown: dict[str, Any] = {"method": self.method, "path": self.path}
        if with_caller:
            shown["caller"] = self.caller
        shown["message"] = self.message
        return shown


def _recent() -> deque[Violation]:
    return deque(maxlen=RECENT_VIOLATIONS)


@dataclass
class _CallerCounts:
    member: str | None
    auth: str
    by_status: Counter[int] = field(default_factory=Counter)
    by_path: Counter[str] = field(default_factory=Counter)
    contract_violations: int = 0
    recent_violations: deque[Violation] = field(default_factory=_recent)

    def as_json(self) -> dict[str, Any]:
        return {
            "member": self.member,
            "auth": self.auth,
            "requests": sum(self.by_status.values()),
            "rate_limited": self.by_status[RATE_LIMITED],
            "server_errors": _server_errors(self.by_status),
            "contract_violations": self.contract_violations,
            "recent_contract_violations": [
                v.as_json(with_caller=False) for v in self.recent_violations
            ],
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
        self._violations = 0
        self._recent: deque[Violation] = _recent()

    def record(
        self,
        method: str,
        path: str,
        status: int,
        caller: Caller | None = None,
        violation: str | None = None,
    ) -> None:
        """`caller` is None for the unauthenticated login lookups, which no caller owns;
        `violation` the message of a contract violation the request was refused for."""
        endpoint = f"{method} {_NUMBER_SEGMENT.sub('/{id}', path)}"
        with self._lock:
            self._by_status[status] += 1
            self._by_endpoint[endpoint] += 1
            noted = None
            if violation is not None:
                noted = Violation(method, path, violation, caller.key if caller else None)
                self._violations += 1
                self._recent.append(noted)
            if caller is None:
                return
            counts = self._by_caller.get(caller.key)
            if counts is None:
                counts = _CallerCounts(caller.member, caller.auth.value)
                self._by_caller[caller.key] = counts
            counts.by_status[status] += 1
            counts.by_path[endpoint] += 1
            if noted is not None:
                counts.contract_violations += 1
                counts.recent_violations.append(noted)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._by_status.values()),
                "by_status": {str(code): n for code, n in sorted(self._by_status.items())},
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
                "rate_limited": self._by_status[RATE_LIMITED],
                "server_errors": _server_errors(self._by_status),
                "contract_violations": self._violations,
                "recent_contract_violations": [v.as_json(with_caller=True) for v in self._recent],
                "by_caller": {
                    key: counts.as_json() for key, counts in sorted(self._by_caller.items())
                },
            }

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._by_endpoint.clear()
            self._by_caller.clear()
            self._violations = 0
            self._recent.clear()
