"""Counts of the ConnectWise API calls the sandbox answered, for request-budget tests."""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any, Final

_NUMBER_SEGMENT: Final = re.compile(r"/\d+(?=/|$)")


class RequestStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_status: Counter[int] = Counter()
        self._by_endpoint: Counter[str] = Counter()

    def record(self, method: str, path: str, status: int) -> None:
        endpoint = f"{method} {_NUMBER_SEGMENT.sub('/{id}', path)}"
        with self._lock:
            self._by_status[status] += 1
            self._by_endpoint[endpoint] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._by_status.values()),
                "by_status": {str(code): n for code, n in sorted(self._by_status.items())},
                "by_endpoint": dict(sorted(self._by_endpoint.items())),
            }

    def reset(self) -> None:
        with self._lock:
            self._by_status.clear()
            self._by_endpoint.clear()
