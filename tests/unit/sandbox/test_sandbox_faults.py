"""Injected faults: the next n matching API calls fail in ConnectWise's shape, answer
slowly, or every matching call fails during an outage window."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest


async def test_429_carries_retry_after_then_the_api_recovers(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    added = await cw.post("/_sandbox/faults", json={"status": 429, "count": 2, "retry_after": 7})
    assert added.status_code == 201
    for _ in range(2):
        response = await cw.get(f"{api}/service/tickets", headers=atech)
        assert response.status_code == 429
        assert response.headers["Retry-After"] == "7"
        body = response.json()
        assert body["code"] == "TooManyRequests"
        assert "7" in body["message"]
    assert (await cw.get(f"{api}/service/tickets", headers=atech)).status_code == 200
    stats = (await cw.get("/_sandbox/stats")).json()
    assert stats["by_status"] == {"200": 1, "429": 2}


async def test_429_without_retry_after_defaults_to_one_second(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.post("/_sandbox/faults", json={"status": 429})
    response = await cw.get(f"{api}/system/info", headers=atech)
    assert response.headers["Retry-After"] == "1"


async def test_server_errors_use_the_connectwise_api_code(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.post("/_sandbox/faults", json={"status": 500})
    await cw.post("/_sandbox/faults", json={"status": 503})
    first = await cw.get(f"{api}/system/info", headers=atech)
    assert first.status_code == 500
    assert first.json()["code"] == "ConnectWiseApi"
    assert "Retry-After" not in first.headers
    second = await cw.get(f"{api}/system/info", headers=atech)
    assert second.status_code == 503
    assert (await cw.get(f"{api}/system/info", headers=atech)).status_code == 200


async def test_path_filter_only_hits_matching_calls(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.post("/_sandbox/faults", json={"status": 503, "path_contains": "/service/tickets"})
    assert (await cw.get(f"{api}/system/info", headers=atech)).status_code == 200
    assert (await cw.get("/_sandbox/health")).status_code == 200
    assert (await cw.get(f"{api}/service/tickets/1001", headers=atech)).status_code == 503
    assert (await cw.get(f"{api}/service/tickets/1001", headers=atech)).status_code == 200


async def test_faults_fire_before_authentication(cw: httpx.AsyncClient, api: str) -> None:
    await cw.post("/_sandbox/faults", json={"status": 429})
    assert (await cw.get(f"{api}/system/info")).status_code == 429


async def test_listing_and_clearing_faults(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.post("/_sandbox/faults", json={"status": 500, "count": 3})
    pending = (await cw.get("/_sandbox/faults")).json()
    assert pending == [{"status": 500, "remaining": 3, "retry_after": None, "path_contains": None}]
    assert (await cw.delete("/_sandbox/faults")).status_code == 204
    assert (await cw.get("/_sandbox/faults")).json() == []
    assert (await cw.get(f"{api}/system/info", headers=atech)).status_code == 200


async def test_unsupported_fault_status_is_refused(cw: httpx.AsyncClient) -> None:
    assert (await cw.post("/_sandbox/faults", json={"status": 404})).status_code == 422
    assert (await cw.post("/_sandbox/faults", json={"status": 500, "count": 0})).status_code == 422


async def test_a_delay_alone_is_a_slow_success(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    added = await cw.post(
        "/_sandbox/faults",
        json={"delay_seconds": 0.3, "count": 2, "path_contains": "/service/tickets"},
    )
    assert added.status_code == 201
    assert added.json()["delay_seconds"] == 0.3
    assert added.json()["status"] is None
    fast = time.monotonic()
    assert (await cw.get(f"{api}/system/info", headers=atech)).status_code == 200
    assert time.monotonic() - fast < 0.25  # another path is not delayed
    for _ in range(2):
        started = time.monotonic()
        response = await cw.get(f"{api}/service/tickets/1001", headers=atech)
        assert response.status_code == 200
        assert response.json()["id"] == 1001
        assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    await cw.get(f"{api}/service/tickets/1001", headers=atech)
    assert time.monotonic() - started < 0.25


async def test_a_delay_with_a_status_is_a_slow_failure(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.post("/_sandbox/faults", json={"status": 429, "delay_seconds": 0.2, "retry_after": 3})
    started = time.monotonic()
    response = await cw.get(f"{api}/system/info", headers=atech)
    assert time.monotonic() - started >= 0.2
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"


async def test_an_outage_window_fails_every_matching_call_until_it_ends(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    added = await cw.post(
        "/_sandbox/faults",
        json={"status": 503, "duration_seconds": 0.5, "path_contains": "/service/"},
    )
    assert added.status_code == 201
    assert added.json()["remaining"] is None
    assert 0 < added.json()["seconds_left"] <= 0.5
    for _ in range(5):
        response = await cw.get(f"{api}/service/tickets", headers=atech)
        assert response.status_code == 503
        assert response.json()["code"] == "ServiceUnavailable"
    assert (await cw.get(f"{api}/system/info", headers=atech)).status_code == 200
    listed = (await cw.get("/_sandbox/faults")).json()
    assert [(f["status"], f["remaining"]) for f in listed] == [(503, None)]
    await asyncio.sleep(0.55)
    assert (await cw.get(f"{api}/service/tickets", headers=atech)).status_code == 200
    assert (await cw.get("/_sandbox/faults")).json() == []


async def test_a_429_outage_keeps_retry_after(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.post(
        "/_sandbox/faults", json={"status": 429, "duration_seconds": 30, "retry_after": 12}
    )
    for _ in range(3):
        response = await cw.get(f"{api}/system/info", headers=atech)
        assert (response.status_code, response.headers["Retry-After"]) == (429, "12")
    assert (await cw.delete("/_sandbox/faults")).status_code == 204
    assert (await cw.get(f"{api}/system/info", headers=atech)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"count": 2},
        {"status": 503, "count": 2, "duration_seconds": 5},
        {"delay_seconds": 0},
        {"delay_seconds": 500},
        {"status": 503, "duration_seconds": 0},
    ],
)
async def test_meaningless_faults_are_refused(
    cw: httpx.AsyncClient, body: dict[str, object]
) -> None:
    assert (await cw.post("/_sandbox/faults", json=body)).status_code == 422
    assert (await cw.get("/_sandbox/faults")).json() == []
