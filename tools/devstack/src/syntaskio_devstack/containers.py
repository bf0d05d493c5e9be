"""Where the tests' Kafka and MongoDB come from: `SYNTASKIO_TEST_BACKEND`.

- `embedded` (the default): the embedded broker and database, as `make run` uses, or the
  servers `KAFKA_BOOTSTRAP_SERVERS` / `MONGODB_URL` name;
- `containers`: a real Apache Kafka (KRaft) and a real MongoDB in throwaway containers
  (testcontainers), for a machine with a Docker engine — the CI workflow
  `.github/workflows/containers.yml`. The machine this project is built on has only the
  Docker client, no engine, so that workflow has never been run here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

BACKEND_VARIABLE: Final = "SYNTASKIO_TEST_BACKEND"
BACKENDS: Final = ("embedded", "containers")
# Pinned: the same servers on every run.
KAFKA_IMAGE: Final = "confluentinc/cp-kafka:7.6.0"
MONGODB_IMAGE: Final = "mongo:8.0"


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot run here; the message says why."""


@dataclass(frozen=True)
class Servers:
    """What the stack is given: None means "start the embedded one"."""

    kafka_bootstrap_servers: str | None
    mongodb_url: str | None


def backend(env: Mapping[str, str] = os.environ) -> str:
    chosen = env.get(BACKEND_VARIABLE, "embedded").strip() or "embedded"
    if chosen not in BACKENDS:
        raise BackendUnavailable(
            f"{BACKEND_VARIABLE}={chosen!r}: choose one of {', '.join(BACKENDS)}"
        )
    return chosen


@contextmanager
def session_servers(env: Mapping[str, str] = os.environ) -> Iterator[Servers]:
    """The servers for this test session, running while the context is open."""
    if backend(env) == "embedded":
        yield Servers(env.get("KAFKA_BOOTSTRAP_SERVERS"), env.get("MONGODB_URL"))
        return
    with _containers() as servers:
        yield servers


@contextmanager
def _containers() -> Iterator[Servers]:
    from docker.errors import DockerException
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.mongodb import MongoDbContainer

    try:
        kafka = KafkaContainer(KAFKA_IMAGE).with_kraft()
        mongodb = MongoDbContainer(MONGODB_IMAGE)
    except DockerException as error:
        raise BackendUnavailable(
            f"{BACKEND_VARIABLE}=containers needs a Docker engine, and none answers here "
            f"({type(error).__name__}); use the embedded backend"
        ) from error
    with kafka, mongodb:
        yield Servers(kafka.get_bootstrap_server(), mongodb.get_connection_url())
