"""A dependency that is down is a 503 problem with Retry-After, in every service (they
share the handlers): the database (any PyMongo connection failure) and the Kafka broker;
one log line, no traceback, in the response or the log."""

from __future__ import annotations

import logging

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from fastapi import FastAPI
from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

from syntaskio_auth.app import unreadable_credentials
from syntaskio_auth.vault import VaultError
from syntaskio_common.problems import PROBLEM_JSON, install_problem_handlers

DOWN = [
    (ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused"), "database"),
    (AutoReconnect("connection closed"), "database"),
    (NetworkTimeout("timed out"), "database"),
    (KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9092"), "message broker"),
    (KafkaTimeoutError(), "message broker"),
]


async def asked(
    app: FastAPI, method: str, path: str, caplog: pytest.LogCaptureFixture
) -> httpx.Response:
    """`app`'s answer to one request, its warnings captured."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with caplog.at_level(logging.WARNING):
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path)


@pytest.mark.parametrize(("error", "what"), DOWN, ids=lambda v: type(v).__name__)
async def test_an_unreachable_dependency_is_a_503_problem_with_retry_after(
    error: Exception, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/work")
    async def work() -> None:
        raise error

    answer = await asked(app, "GET", "/work", caplog)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["retry-after"] == "5"
    assert answer.json()["detail"] == f"The {what} is unavailable; try again shortly."
    assert "127.0.0.1" not in answer.text  # nothing about where or why
    [line] = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert line.exc_info is None  # one line, not a traceback


async def test_credentials_no_vault_key_opens_are_a_503_problem_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """auth-service: secrets sealed under a key no longer in VAULT_KEYS (an operator's
    mistake in a rotation) leave the connection as it is, and say so in one line."""
    app = FastAPI()
    install_problem_handlers(app)
    app.add_exception_handler(VaultError, unreadable_credentials)

    @app.post("/lease")
    async def lease() -> None:
        raise VaultError("the secret was sealed with a key id that is not in the keyring")

    answer = await asked(app, "POST", "/lease", caplog)
    assert answer.status_code == 503
    assert answer.headers["content-type"] == PROBLEM_JSON
    assert answer.headers["retry-after"] == "60"
    assert "keyring" not in answer.text  # how it failed is for the operator's log
    [line] = [r for r in caplog.records if "credentials unreadable" in r.getMessage()]
    assert line.exc_info is None
