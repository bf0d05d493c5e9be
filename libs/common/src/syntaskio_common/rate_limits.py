"""Per-caller rate limits for sensitive endpoints (login, OAuth), answered with 429.

Counters live in process memory (the `limits` library's moving window): each replica
enforces the limit on its own share of traffic, which bounds abuse without a shared store.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter

from syntaskio_common.problems import Problem


class RateLimiter:
    def __init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def hit(self, limit: str | RateLimitItem, *caller: str) -> None:
        """Count one request by `caller` against `limit` ("10/minute"); 429 when over it."""
        item = parse(limit) if isinstance(limit, str) else limit
        if await self._limiter.hit(item, *caller):
            return
        stats = await self._limiter.get_window_stats(item, *caller)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise Problem(
            429,
            f"Too many requests; try again in {retry_after} seconds.",
            headers={"Retry-After": str(retry_after)},
        )
