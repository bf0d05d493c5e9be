"""Response latency of the ConnectWise API, for benchmarks: a real server answers in
tens to hundreds of milliseconds, some requests much later. Waited with `asyncio.sleep`
in the traffic middleware, so a waiting request holds neither the event loop nor a
worker thread and any number of them can wait at once."""

from __future__ import annotations

import random

from connectwise_sandbox.settings import Settings


class Latency:
    """Every request waits `base_ms`, except a `tail_fraction` of them (drawn at random
    from the seed's own stream), which wait `tail_ms`."""

    def __init__(self, *, base_ms: float, tail_ms: float, tail_fraction: float, seed: int) -> None:
        self.base_ms = base_ms
        self.tail_ms = tail_ms
        self.tail_fraction = tail_fraction
        self._rng = random.Random(f"latency:{seed}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Latency:
        return cls(
            base_ms=settings.latency_ms,
            tail_ms=settings.latency_tail_ms,
            tail_fraction=settings.latency_tail_fraction,
            seed=settings.seed,
        )

    @property
    def enabled(self) -> bool:
        return self.base_ms > 0 or (self.tail_fraction > 0 and self.tail_ms > 0)

    def next_seconds(self) -> float:
        """How long the next request waits. Called on the event loop only (no lock)."""
        if self.tail_fraction > 0 and self._rng.random() < self.tail_fraction:
            return self.tail_ms / 1000
        return self.base_ms / 1000
