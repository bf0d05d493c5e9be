"""Consumer lag: per consumer group and partition, how many records are not yet
committed (the partition's end offset minus the group's committed offset; the whole
partition when the group has committed nothing there yet).

Each service measures the groups it consumes with, every `interval` seconds in the
background, and serves the figures as the gauge `syntaskio.kafka.consumer.lag` (labels
`group`, `topic`, `partition`). Replicas of one service report the same figures: alert
on their maximum. A measurement that fails (the broker restarting) keeps the previous
figures and is logged; the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from opentelemetry.metrics import CallbackOptions, Observation

from syntaskio_common.kafka import client_options, topic_partitions
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.telemetry import meter

logger = logging.getLogger(__name__)

Lag = dict[tuple[str, str, int], int]  # (group, topic, partition) → records behind


class ConsumerLag:
    def __init__(
        self, settings: ServiceSettings, groups: Mapping[str, str], interval: float = 15.0
    ) -> None:
        """`groups`: each consumer group and the topic it reads."""
        self._options = client_options(settings)
        self._groups = dict(groups)
        self._interval = interval
        self.lag: Lag = {}
        self._task: asyncio.Task[None] | None = None
        meter.create_observable_gauge(
            "syntaskio.kafka.consumer.lag",
            callbacks=[self._observe],
            unit="{record}",
            description="Records not yet committed by a consumer group, per partition",
        )

    def _observe(self, _: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(behind, {"group": group, "topic": topic, "partition": str(partition)})
            for (group, topic, partition), behind in self.lag.items()
        ]

    async def measure(self) -> Lag:
        """Measure now (and keep the figures for the gauge)."""
        ends = AIOKafkaConsumer(**self._options)
        admin = AIOKafkaAdminClient(**self._options)
        await ends.start()
        try:
            await admin.start()
            lag: Lag = {}
            for group, topic in self._groups.items():
                partitions = await topic_partitions(ends, topic)
                end = await ends.end_offsets(partitions)
                committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
                for tp in partitions:
                    done = committed.get(tp)
                    offset = done.offset if done is not None and done.offset >= 0 else 0
                    lag[(group, topic, tp.partition)] = max(0, end[tp] - offset)
        finally:
            await admin.close()
            await ends.stop()
        self.lag = lag
        return lag

    async def _run(self) -> None:
        while True:
            try:
                await self.measure()
            except (KafkaError, LookupError, OSError) as error:
                logger.warning("could not measure consumer lag: %s", type(error).__name__)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="consumer-lag")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
