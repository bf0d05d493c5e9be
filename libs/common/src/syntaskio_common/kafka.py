"""The one Kafka factory: a FastStream broker, topic creation, and CloudEvent publishing.

Every Kafka client a service makes — FastStream's producers and consumers, and the plain
aiokafka ones (admin, the gateway's feed reader, consumer lag, the DLQ replay) — connects
with `kafka_security(settings)`: TLS with a CA of its own and a client certificate, and/or
SASL PLAIN or SCRAM, from the `KAFKA_*` settings. Plain clients take `client_options`
(consumers: `consumer_options`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
from faststream.kafka.security import parse_security
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from opentelemetry.trace import SpanKind

from syntaskio_common.events import KafkaRecord
from syntaskio_common.settings import KafkaSaslMechanism, ServiceSettings
from syntaskio_common.telemetry import current_traceparent, tracer

logger = logging.getLogger(__name__)


def kafka_security(settings: ServiceSettings) -> BaseSecurity | None:
    """How the service's clients authenticate and encrypt (None: plaintext)."""
    context = None
    if settings.kafka_uses_tls:
        key_password = settings.kafka_ssl_key_password
        context = create_ssl_context(
            cafile=settings.kafka_ssl_ca_file,
            certfile=settings.kafka_ssl_cert_file,
            keyfile=settings.kafka_ssl_key_file,
            password=key_password.get_secret_value() if key_password else None,
        )
    if settings.kafka_uses_sasl:
        password = settings.kafka_sasl_password
        sasl = {
            KafkaSaslMechanism.PLAIN: SASLPlaintext,
            KafkaSaslMechanism.SCRAM_SHA_256: SASLScram256,
            KafkaSaslMechanism.SCRAM_SHA_512: SASLScram512,
        }[settings.kafka_sasl_mechanism]
        return sasl(
            settings.kafka_sasl_username or "",
            password.get_secret_value() if password else "",
            ssl_context=context,
            use_ssl=settings.kafka_uses_tls,
        )
    if context is not None:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


def client_options(settings: ServiceSettings) -> dict[str, Any]:
    """What a plain aiokafka client (consumer, producer, admin) is given to connect."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        **parse_security(kafka_security(settings)),
    }


def consumer_options(settings: ServiceSettings) -> dict[str, Any]:
    """What a plain aiokafka consumer is given: how to connect, and how long the broker
    may hold its fetch (`KAFKA_FETCH_MAX_WAIT_MS`)."""
    return client_options(settings) | {"fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms}


# acks="all": a publish is acknowledged only once it is durable. Producer idempotence is
# not relied on (the embedded broker lacks it); consumers dedupe by version instead.
# Batches of up to 512 KiB a partition: a burst (a page of a sync, a batch's
# announcements) goes in a few requests, where the default 16 KiB queues most of it
# behind one acknowledged request after another.
ACKS: Final = "all"
MAX_BATCH_BYTES: Final = 512 * 1024


def create_broker(settings: ServiceSettings, client_id: str) -> KafkaBroker:
    # The telemetry middleware: a span per publish and per message (or batch) handled,
    # the W3C `traceparent` header on each record (`syntaskio_common.telemetry`).
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks=ACKS,
        max_batch_size=MAX_BATCH_BYTES,
        logger=logger,
        middlewares=[KafkaTelemetryMiddleware()],
        security=kafka_security(settings),
    )


Handler = Callable[..., Awaitable[None]]

# How long a batch subscriber waits for records when it has none. FastStream then sleeps
# as long again before it asks anew, and a record that comes meanwhile waits out the
# sleep: its default (200 ms) added up to 200 ms to a change's way to the dashboard. A
# batch is whatever has arrived when the last one is done, so under load a short wait
# costs no batching; idle, it costs a wake-up every 2 x this.
BATCH_WAIT_MS: Final = 20


def at_least_once(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    *,
    description: str,
    fetch_max_wait_ms: int,
    batch_size: int | None = None,
    consumers: int = 1,
    decoder: Any = None,
) -> Callable[[Handler], Handler]:
    """The one way to subscribe: the offset is committed only after the handler returns
    (an unhandled error rewinds), and a new group starts from the oldest record. With
    `batch_size`, the handler gets up to that many records at once and the whole batch
    is committed or rewound together (every partition in it rewinds to its earliest).
    With `consumers`, that many consumers of the group run in this process, each owning
    some of the topic's partitions, so their batches are handled concurrently (one
    key's records stay in one partition, so in order). `fetch_max_wait_ms`: the
    service's `KAFKA_FETCH_MAX_WAIT_MS`."""
    batching: dict[str, Any] = (
        {"batch": True, "max_records": batch_size, "batch_timeout_ms": BATCH_WAIT_MS}
        if batch_size is not None
        else {}
    )
    subscribers = [
        broker.subscriber(
            topic,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            fetch_max_wait_ms=fetch_max_wait_ms,
            description=description,
            decoder=decoder,
            include_in_schema=index == 0,  # one subscription, however many consumers
            **batching,
        )
        for index in range(consumers)
    ]

    def subscribe(handler: Handler) -> Handler:
        for subscriber in subscribers:
            subscriber(handler)
        return handler

    return subscribe


# -- connecting at start-up ---------------------------------------------------------------

STARTUP_SECONDS: Final = 20.0  # a service that cannot reach Kafka by then says why and exits


class KafkaUnavailable(RuntimeError):
    """The service's Kafka settings do not get it a connection; the message says what
    was tried and, where it can tell, why (never a password)."""


READINESS_SECONDS: Final = 2.0  # under the probes' 3 s timeout


def reachable(broker: KafkaBroker) -> Callable[[], Awaitable[bool]]:
    """A readiness check: the cluster answers the broker's admin client (DescribeCluster,
    which needs no ACL) within READINESS_SECONDS. A service that cannot publish or consume
    takes no traffic until it can."""

    async def check() -> bool:
        return await broker.ping(timeout=READINESS_SECONDS)

    return check


async def connected_admin(settings: ServiceSettings) -> AIOKafkaAdminClient:
    """An admin client that has connected, or `KafkaUnavailable` within STARTUP_SECONDS."""
    admin = AIOKafkaAdminClient(
        **client_options(settings), request_timeout_ms=int(STARTUP_SECONDS * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), STARTUP_SECONDS)
    except Exception as error:  # aiokafka's failures differ by cause: tell them apart below
        with contextlib.suppress(Exception):
            await admin.close()
        problem = KafkaUnavailable(await _why(settings, error))
        logger.error("%s", problem)
        raise problem from None
    return admin


async def _why(settings: ServiceSettings, error: Exception) -> str:
    tried = settings.kafka_security_protocol.value
    if settings.kafka_uses_sasl:
        tried += f", SASL {settings.kafka_sasl_mechanism.value} as {settings.kafka_sasl_username!r}"
    said = f"cannot connect to Kafka at {settings.kafka_bootstrap_servers} ({tried})"
    if settings.kafka_uses_tls and (refused := await _tls_refusal(settings)):
        return f"{said}: {refused}"
    if settings.kafka_uses_sasl:
        refusal = "the broker refused the connection or the SASL credentials"
        return f"{said}: {refusal} ({type(error).__name__})"
    return f"{said}: {type(error).__name__}: {error}"


async def _tls_refusal(settings: ServiceSettings) -> str | None:
    """Why a TLS handshake with the first bootstrap server fails, if it does."""
    host, _, port = settings.kafka_bootstrap_servers.split(",")[0].strip().rpartition(":")
    security = kafka_security(settings)
    context = security.ssl_context if security is not None else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), ssl=context, server_hostname=host), 10
        )
        # Under TLS 1.3 a broker refuses a client certificate after the handshake: it
        # closes at once (a broker that accepts says nothing unasked).
        closed = False
        with contextlib.suppress(TimeoutError):
            closed = await asyncio.wait_for(reader.read(1), 1) == b""
    except ssl.SSLCertVerificationError as refused:
        return (
            f"the broker's certificate is not trusted ({refused.verify_message}; "
            f"KAFKA_SSL_CA_FILE={settings.kafka_ssl_ca_file or 'the system CAs'})"
        )
    except ssl.SSLError as refused:
        return f"the TLS handshake failed ({refused.reason or refused})"
    except (OSError, TimeoutError) as unreachable:
        return f"no TLS connection ({type(unreachable).__name__}: {unreachable})"
    writer.close()
    if closed:
        unset = "" if settings.kafka_ssl_cert_file else "; KAFKA_SSL_CERT_FILE is unset"
        return f"the broker closed the TLS connection: does it want a client certificate{unset}?"
    return None


async def ensure_topics(settings: ServiceSettings, topics: Iterable[str]) -> None:
    """Create missing topics (embedded broker, tests). In production topics are
    provisioned by operations and this is a no-op for the ones that exist."""
    admin = await connected_admin(settings)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.kafka_topic_partitions, 1)
            for name in topics
            if name not in existing
        ]
        if missing:
            # Another service may have created it first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, in order, for a consumer that assigns them itself (it
    reads them all, without a group's assignment); LookupError if the topic is missing."""
    await consumer.topics()  # fetches the cluster metadata
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise LookupError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, n) for n in sorted(numbers)]


async def publish(broker: KafkaBroker, topic: str, record: KafkaRecord) -> None:
    await broker.publish(
        record.value,
        topic=topic,
        key=record.key,
        headers=record.headers,
    )


Send = Callable[[Iterable[KafkaRecord]], Awaitable[None]]


class BatchProducer:
    """Sends a handler's records a batch at a time: one producer span per batch, where
    publishing through the broker makes two spans and a middleware pass per record (a
    quarter of the aggregator's time went there). Each record keeps its own CloudEvents
    `ce_traceparent` (the trace it belongs to); its transport `traceparent` is the
    batch's span. A plain aiokafka producer, started and stopped with the service."""

    def __init__(self, settings: ServiceSettings, client_id: str) -> None:
        self._options = client_options(settings) | {
            "client_id": client_id,
            "acks": ACKS,
            "max_batch_size": MAX_BATCH_BYTES,
        }
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(**self._options)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def documented(self, broker: KafkaBroker, topic: str, *, description: str, schema: Any) -> Send:
        """Sends to `topic`, which appears in the service's AsyncAPI document (made from
        the broker's publishers) with its payload schema."""
        broker.publisher(topic, title=topic, description=description, schema=schema)

        async def send(records: Iterable[KafkaRecord]) -> None:
            await self.send(topic, list(records))

        return send

    async def send(self, topic: str, records: list[KafkaRecord]) -> None:
        """Returns once every record is acknowledged."""
        if not records:
            return
        if self._producer is None:
            raise RuntimeError("the producer is not started")
        with tracer.start_as_current_span(
            f"{topic} publish",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation": "publish",
                "messaging.destination.name": topic,
                "messaging.batch.message_count": len(records),
            },
        ):
            transport = [(name, value.encode()) for name, value in current_traceparent().items()]
            acks = [
                await self._producer.send(
                    topic,
                    record.value,
                    key=record.key,
                    headers=[(k, v.encode()) for k, v in record.headers.items()] + transport,
                )
                for record in records
            ]
            await asyncio.gather(*acks)


async def publish_all(broker: KafkaBroker, topic: str, records: Iterable[KafkaRecord]) -> None:
    """Publish concurrently (the producer batches them) and return once all are acked."""
    await asyncio.gather(*(publish(broker, topic, record) for record in records))
