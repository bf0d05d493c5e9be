"""Injected failures: make the next n matching API calls fail the way ConnectWise does
under load (429 with `Retry-After`, 5xx), answer slowly, or fail every matching call
during an outage window — for resilience tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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
    """`status` None with a delay is a slow success. `remaining` counts the calls left;
    None means an outage window that lasts until `until` (a `time.monotonic()` value)."""

    status: int | None
    remaining: int | None
    retry_after: int | None = None
    path_contains: str | None = None
    delay_seconds: float | None = None
    until: float | None = None

    def matches(self, path: str) -> bool:
        return self.path_contains is None or self.path_contains.lower() in path.lower()

    def error(self) -> CwError | None:
        if self.status is None:
            return None
        code, template = _BODIES[self.status]
        retry = self.retry_after
        if self.status == 429 and retry is None:
            retry = DEFAULT_RETRY_AFTER
        headers = {"Retry-After": str(retry)} if retry is not None else {}
        return CwError(self.status, code, template.format(retry=retry), headers=headers)


class FaultInjector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self.clock = clock

    def add(self, fault: Fault) -> None:
        if fault.status is not None and fault.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {sorted(FAULT_STATUSES)}")
        if fault.status is None and not fault.delay_seconds:
            raise ValueError("a fault needs a status, a delay, or both")
        if (fault.remaining is None) is (fault.until is None):
            raise ValueError("a fault has either a count or a window")
        if fault.remaining is not None and fault.remaining < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._faults.append(fault)

    def window(self, seconds: float) -> float:
        """The `until` of an outage window starting now."""
        return self.clock() + seconds

    def seconds_left(self, fault: Fault) -> float | None:
        return None if fault.until is None else max(0.0, fault.until - self.clock())

    def take(self, path: str) -> Fault | None:
        """The oldest fault matching `path`: a counted one loses a use, a window stays
        until it ends."""
        with self._lock:
            self._drop_ended()
            for index, fault in enumerate(self._faults):
                if not fault.matches(path):
                    continue
                if fault.remaining is None:
                    return fault
                if fault.remaining > 1:
                    self._faults[index] = replace(fault, remaining=fault.remaining - 1)
                else:
                    del self._faults[index]
                return fault
        return None

    def pending(self) -> list[Fault]:
        with self._lock:
            self._drop_ended()
            return list(self._faults)

    def _drop_ended(self) -> None:
        now = self.clock()
        self._faults = [f for f in self._faults if f.until is None or f.until > now]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()
