"""Where the tests' Kafka and MongoDB come from (`SYNTASKIO_TEST_BACKEND`): the embedded
servers by default, the servers the environment names, or containers — which need a
Docker engine and say so plainly when there is none (as on the machine this project is
built on: the containers backend has never run here)."""

from __future__ import annotations

import pytest

from syntaskio_devstack.containers import BackendUnavailable, Servers, backend, session_servers


def test_the_embedded_servers_by_default() -> None:
    assert backend({}) == "embedded"
    with session_servers({}) as servers:
        assert servers == Servers(None, None)


def test_servers_the_environment_names_are_used() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "MONGODB_URL": "mongodb://db:27017"}
    with session_servers(env) as servers:
        assert servers == Servers("kafka:9092", "mongodb://db:27017")


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(BackendUnavailable, match="choose one of embedded, containers"):
        backend({"SYNTASKIO_TEST_BACKEND": "docker"})


def test_containers_without_a_docker_engine_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    # An engine nobody runs, whatever this machine has.
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with (
        pytest.raises(BackendUnavailable, match="needs a Docker engine"),
        session_servers({"SYNTASKIO_TEST_BACKEND": "containers"}),
    ):
        pass
