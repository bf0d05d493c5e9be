"""Injected failures: make the next n matching API calls fail the way ConnectWise does
under load (429 with `Retry-After`, 5xx), for resilience tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Final

from connectwise_sandbox.errors import CwError

FAULT_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
DEFAULT_RETRY_AFTER: Final = 1

_BODIES: Final = {
    429: ("TooManyRequests", "Request rate limit exceeded. Retry after {retry} second(s)."),
    # The SQL timeout text real instances return under the ConnectWiseApi code.
    500: (
        "ConnectWiseApi",
        "Execution Timeout Expired.  The timeout period elapsed prior to completion of the "
        "operation or the server is not responding.",
    ),
    502: ("BadGateway", "The server received an invalid response from an upstream server."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable. Please try again."),
    504: ("GatewayTimeout", "The upstream server did not respond in time."),
}


@dataclass(frozen=True)
class Fault:
    status: int
    remaining: int
    retry_after: int | None = None
    path_contains: str | None = None

    def matches(self, path: str) -> bool:
        return self.path_contains is None or self.path_contains.lower() in path.lower()

    def error(self) -> CwError:
        code, template = _BODIES[self.status]
        retry = self.retry_after
        if self.status == 429 and retry is None:
            retry = DEFAULT_RETRY_AFTER
        headers = {"Retry-After": str(retry)} if retry is not None else {}
        return CwError(self.status, code, template.format(retry=retry), headers=headers)


class FaultInjector:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        if fault.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(FAULT_STATUSES)}")
        if fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str) -> Fault | None:
        """Consume one use of the oldest fault matching `path`."""
        with self._lock:
            for index, fault in enumerate(self._faults):
                if fault.matches(path):
                    if fault.remaining > 1:
                        self._faults[index] = replace(fault, remaining=fault.remaining - 1)
                    else:
                        del self._faults[index]
                    return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
