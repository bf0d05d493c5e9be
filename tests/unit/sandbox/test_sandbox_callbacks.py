"""Callbacks: registration through the API, and deliveries to a real HTTP receiver
(uvicorn on 127.0.0.1) — their body, the signature checked with the key fetched from
`key_url`, retries, timeouts, pausing, key rotation, and which changes fire them."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn

from connectwise_sandbox import DEV_CLIENT_ID, Settings
from connectwise_sandbox.state import SandboxState

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)
HeadersFor = Callable[[str], dict[str, str]]


@pytest.fixture
def cw_settings() -> Settings:
    return Settings(
        tickets=300,
        seed=42,
        anchor=ANCHOR,
        client_ids=DEV_CLIENT_ID,
        callback_timeout=0.5,
        callback_retry_delay=0.01,
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class Receiver:
    """An ASGI app that records every request and answers from a script of statuses
    (then 200), optionally after a delay."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(scope["path"], headers, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        status = self.statuses.pop(0) if self.statuses else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
async def receiver(cw_state: SandboxState) -> AsyncIterator[Receiver]:
    app = Receiver()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
        timeout_graceful_shutdown=1,
    )  # fmt: skip
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    app.port = server.servers[0].sockets[0].getsockname()[1]
    yield app
    cw_state.callbacks.deliverer.close()  # before the receiver goes away
    server.should_exit = True
    await task


POLL_SECONDS = 0.02
POLLS = 250  # five seconds


async def eventually(check: Callable[[], bool]) -> None:
    for _ in range(POLLS):
        if check():
            return
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError("timed out")


Register = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def register(cw: httpx.AsyncClient, api: str, atech: dict[str, str]) -> Register:
    async def register(
        url: str, headers: dict[str, str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {"url": url, "objectId": 1, "type": "Ticket", "level": "Owner"} | fields
        response = await cw.post(f"{api}/system/callbacks", json=body, headers=headers or atech)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    return register


def expected_signature(body: bytes, signing_key: str) -> str:
    """The documented algorithm, written out independently of the sandbox's code."""
    key = hashlib.sha256(signing_key.encode("utf-8")).digest()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


async def signing_key(cw: httpx.AsyncClient, key_url: str, headers: dict[str, str]) -> str:
    response = await cw.get(key_url, headers=headers)
    assert response.status_code == 200, response.text
    key: str = response.json()["signing_key"]
    return key


# --- registration ------------------------------------------------------------------------


async def test_registering_listing_and_deleting_callbacks(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], headers_for: HeadersFor
) -> None:
    created = await cw.post(
        f"{api}/system/callbacks",
        json={
            "url": "https://hooks.example/cw",
            "objectId": 1,
            "type": "ticket",
            "level": "owner",
            "description": "Syntaskio",
        },
        headers=atech,
    )
    assert created.status_code == 201
    callback = created.json()
    assert callback["url"] == "https://hooks.example/cw"
    assert (callback["type"], callback["level"]) == ("Ticket", "Owner")
    assert callback["memberId"] == 101
    assert callback["description"] == "Syntaskio"
    assert callback["inactiveFlag"] is False
    mine = (await cw.get(f"{api}/system/callbacks", headers=atech)).json()
    assert mine == [callback]
    assert (await cw.get(f"{api}/system/callbacks/count", headers=atech)).json() == {"count": 1}
    one = await cw.get(f"{api}/system/callbacks/{callback['id']}", headers=atech)
    assert one.json() == callback
    # Another member neither sees nor deletes it.
    bjones = headers_for("bjones")
    assert (await cw.get(f"{api}/system/callbacks", headers=bjones)).json() == []
    url = f"{api}/system/callbacks/{callback['id']}"
    assert (await cw.get(url, headers=bjones)).status_code == 404
    assert (await cw.delete(url, headers=bjones)).status_code == 404
    assert (await cw.delete(url, headers=atech)).status_code == 204
    assert (await cw.get(url, headers=atech)).status_code == 404
    assert (await cw.delete(url, headers=atech)).status_code == 404
    assert (await cw.get(f"{api}/system/callbacks", headers=atech)).json() == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "not a url"}, "url"),
        ({"url": "ftp://hooks.example/x"}, "url"),
        ({"type": "Invoice"}, "type"),
        ({"level": "Territory"}, "level"),
        ({"objectId": None}, "objectId"),
        ({"objectId": -1}, "objectId"),
        ({"url": None}, "url"),
    ],
)
async def test_bad_registrations_are_invalid_object(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], changes: dict[str, Any], field: str
) -> None:
    body = {"url": "https://hooks.example/cw", "objectId": 1, "type": "Ticket", "level": "All"}
    body = {k: v for k, v in (body | changes).items() if v is not None}
    response = await cw.post(f"{api}/system/callbacks", json=body, headers=atech)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidObject"
    assert response.json()["errors"][0]["field"] == field
    assert (await cw.get(f"{api}/system/callbacks", headers=atech)).json() == []


async def test_a_duplicate_registration_is_refused(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], register: Register
) -> None:
    await register("https://hooks.example/cw")
    again = await cw.post(
        f"{api}/system/callbacks",
        json={"url": "https://hooks.example/cw", "objectId": 1, "type": "Ticket", "level": "Owner"},
        headers=atech,
    )
    assert again.status_code == 400
    assert again.json()["errors"][0]["code"] == "Duplicate"
    await register("https://hooks.example/cw", type="ProjectTicket")  # another type is fine


async def test_callbacks_need_auth(cw: httpx.AsyncClient, api: str) -> None:
    assert (await cw.get(f"{api}/system/callbacks")).status_code == 401
    assert (await cw.get(f"{api}/system/callbackKeys/abc")).status_code == 401


# --- deliveries --------------------------------------------------------------------------


async def test_a_delivery_is_signed_with_the_key_from_key_url(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    register: Register,
    receiver: Receiver,
) -> None:
    callback = await register(receiver.url())
    response = await cw.patch("/_sandbox/tickets/1002", json={"summary": "Changed by admin"})
    assert response.status_code == 200
    await eventually(lambda: len(receiver.received) == 1)
    delivery = receiver.received[0]
    assert delivery.path == "/hook"
    assert delivery.headers["content-type"] == "application/json"
    payload = delivery.payload()
    assert set(payload) == {"Action", "Type", "ID", "CompanyId", "MemberId", "Entity", "Metadata"}
    assert payload["Action"] == "updated"
    assert payload["Type"] == "Ticket"
    assert payload["ID"] == 1002
    assert payload["CompanyId"] == "syntaskio"
    assert payload["MemberId"] == "atech"  # an admin change: the callback's owner
    ticket = (await cw.get(f"{api}/service/tickets/1002", headers=atech)).json()
    assert isinstance(payload["Entity"], str)
    assert json.loads(payload["Entity"]) == ticket
    key_url = payload["Metadata"]["key_url"]
    assert key_url.startswith(f"http://sandbox.test{api}/system/callbackKeys/")
    key = await signing_key(cw, key_url, atech)
    assert delivery.headers["x-content-signature"] == expected_signature(delivery.body, key)
    assert delivery.headers["x-content-signature"] != expected_signature(delivery.body + b" ", key)
    log = (await cw.get("/_sandbox/callbacks/deliveries")).json()
    assert len(log) == 1
    assert {
        "callback_id": callback["id"],
        "url": receiver.url(),
        "action": "updated",
        "type": "Ticket",
        "id": 1002,
        "attempts": 1,
        "status_code": 200,
        "error": None,
        "delivered": True,
    }.items() <= log[0].items()


async def test_added_and_deleted_actions(
    cw: httpx.AsyncClient, register: Register, receiver: Receiver
) -> None:
    await register(receiver.url())
    created = (await cw.post("/_sandbox/tickets", json={"summary": "New one"})).json()
    await eventually(lambda: len(receiver.received) == 1)
    assert (await cw.delete(f"/_sandbox/tickets/{created['id']}")).status_code == 204
    await eventually(lambda: len(receiver.received) == 2)
    payloads = sorted((r.payload() for r in receiver.received), key=lambda p: p["Action"])
    added, deleted = payloads
    assert (added["Action"], added["ID"]) == ("added", created["id"])
    assert json.loads(added["Entity"])["summary"] == "New one"
    assert (deleted["Action"], deleted["ID"], deleted["Entity"]) == ("deleted", created["id"], None)


async def test_an_api_write_names_the_member_who_made_it(
    cw: httpx.AsyncClient,
    api: str,
    headers_for: HeadersFor,
    register: Register,
    receiver: Receiver,
) -> None:
    await register(receiver.url())  # owned by atech
    bjones = headers_for("bjones")
    patched = await cw.patch(
        f"{api}/service/tickets/1005",
        json=[{"op": "replace", "path": "summary", "value": "by bjones"}],
        headers=bjones,
    )
    assert patched.status_code == 200
    await eventually(lambda: len(receiver.received) == 1)
    payload = receiver.received[0].payload()
    assert payload["MemberId"] == "bjones"
    assert json.loads(payload["Entity"])["summary"] == "by bjones"
    # Notes and time entries are changes to their ticket.
    await cw.post(
        f"{api}/service/tickets/1005/notes",
        json={"text": "x", "detailDescriptionFlag": True},
        headers=bjones,
    )
    await cw.post(
        f"{api}/time/entries",
        json={
            "chargeToType": "ServiceTicket",
            "chargeToId": 1005,
            "timeStart": "2026-06-01T09:00:00Z",
            "actualHours": 1,
        },
        headers=bjones,
    )
    await eventually(lambda: len(receiver.received) == 3)
    assert {(r.payload()["ID"], r.payload()["Action"]) for r in receiver.received} == {
        (1005, "updated")
    }


async def test_each_type_hears_only_its_own_records(
    cw: httpx.AsyncClient,
    register: Register,
    receiver: Receiver,
    cw_state: SandboxState,
) -> None:
    for kind in ("Ticket", "ProjectTicket", "Schedule", "Project"):
        await register(receiver.url(f"/{kind}"), type=kind)
    project_ticket = cw_state.store.project_tickets()[0]["id"]
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "s"})
    await cw.patch(f"/_sandbox/project-tickets/{project_ticket}", json={"summary": "p"})
    entry = (
        await cw.post("/_sandbox/schedule-entries", json={"objectId": 1001, "member": "bjones"})
    ).json()
    await cw.patch("/_sandbox/projects/2", json={"name": "Renamed project"})
    await eventually(lambda: len(receiver.received) == 4)
    await asyncio.sleep(0.2)  # nothing else arrives
    assert len(receiver.received) == 4
    by_path = {r.path: r.payload() for r in receiver.received}
    assert (by_path["/Ticket"]["Type"], by_path["/Ticket"]["ID"]) == ("Ticket", 1001)
    assert (by_path["/ProjectTicket"]["Type"], by_path["/ProjectTicket"]["ID"]) == (
        "ProjectTicket",
        project_ticket,
    )
    schedule = by_path["/Schedule"]
    assert (schedule["Type"], schedule["ID"], schedule["Action"]) == (
        "Schedule",
        entry["id"],
        "added",
    )
    assert json.loads(schedule["Entity"])["objectId"] == 1001
    project = by_path["/Project"]
    assert (project["Type"], project["ID"]) == ("Project", 2)
    assert json.loads(project["Entity"])["name"] == "Renamed project"


async def test_board_level_filters_by_object_id(
    cw: httpx.AsyncClient, register: Register, receiver: Receiver, cw_state: SandboxState
) -> None:
    tickets = cw_state.store.tickets()
    desk = next(t for t in tickets if t["board"]["name"] == "Service Desk")
    other = next(t for t in tickets if t["board"]["name"] != "Service Desk")
    await register(receiver.url(), level="Board", objectId=desk["board"]["id"])
    await cw.patch(f"/_sandbox/tickets/{other['id']}", json={"summary": "elsewhere"})
    await cw.patch(f"/_sandbox/tickets/{desk['id']}", json={"summary": "on the desk"})
    await eventually(lambda: len(receiver.received) == 1)
    await asyncio.sleep(0.2)
    assert [r.payload()["ID"] for r in receiver.received] == [desk["id"]]


async def test_self_suppressed_callbacks_skip_the_owners_own_changes(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    headers_for: HeadersFor,
    register: Register,
    receiver: Receiver,
) -> None:
    await register(receiver.url(), isSelfSuppressedFlag=True)
    own = [{"op": "replace", "path": "summary", "value": "mine"}]
    assert (
        await cw.patch(f"{api}/service/tickets/1001", json=own, headers=atech)
    ).status_code == 200
    theirs = [{"op": "replace", "path": "summary", "value": "theirs"}]
    bjones = headers_for("bjones")
    await cw.patch(f"{api}/service/tickets/1002", json=theirs, headers=bjones)
    await eventually(lambda: len(receiver.received) == 1)
    await asyncio.sleep(0.2)
    assert [r.payload()["ID"] for r in receiver.received] == [1002]


async def test_failed_attempts_are_retried_twice(
    cw: httpx.AsyncClient, register: Register, receiver: Receiver
) -> None:
    await register(receiver.url())
    receiver.statuses = [500, 503]
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "a"})
    await eventually(lambda: len(receiver.received) == 3)
    log = await wait_for_log(cw, 1)
    assert (log[0]["attempts"], log[0]["status_code"], log[0]["delivered"]) == (3, 200, True)
    # The same body and signature on every attempt.
    assert len({(r.body, r.headers["x-content-signature"]) for r in receiver.received}) == 1

    receiver.statuses = [500, 500, 500, 500]
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "b"})
    log = await wait_for_log(cw, 2)
    assert (log[1]["attempts"], log[1]["status_code"], log[1]["delivered"]) == (3, 500, False)
    assert len(receiver.received) == 6  # three more, and no fourth


async def wait_for_log(cw: httpx.AsyncClient, count: int) -> list[dict[str, Any]]:
    """The delivery log once it holds `count` finished deliveries."""
    for _ in range(POLLS):
        log: list[dict[str, Any]] = (await cw.get("/_sandbox/callbacks/deliveries")).json()
        if len(log) >= count:
            return log
        await asyncio.sleep(POLL_SECONDS)
    raise AssertionError(f"fewer than {count} deliveries logged")


async def test_a_slow_receiver_times_out_and_never_blocks_the_change(
    cw: httpx.AsyncClient, register: Register, receiver: Receiver
) -> None:
    await register(receiver.url())
    receiver.delay = 1.0  # the test settings' timeout is 0.5 s
    started = time.monotonic()
    response = await cw.patch("/_sandbox/tickets/1001", json={"summary": "slow"})
    assert response.status_code == 200
    assert time.monotonic() - started < 0.4
    log = await wait_for_log(cw, 1)
    assert log[0]["attempts"] == 3
    assert log[0]["status_code"] is None
    assert "Timeout" in log[0]["error"]
    assert log[0]["delivered"] is False


async def test_an_unreachable_url_is_logged_as_an_error(
    cw: httpx.AsyncClient, register: Register
) -> None:
    await register("http://127.0.0.1:1/nothing")  # nothing listens on port 1
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "x"})
    log = await wait_for_log(cw, 1)
    assert (log[0]["attempts"], log[0]["delivered"]) == (3, False)
    assert "Connect" in log[0]["error"]
    assert (await cw.delete("/_sandbox/callbacks/deliveries")).status_code == 204
    assert (await cw.get("/_sandbox/callbacks/deliveries")).json() == []


async def test_pause_holds_deliveries_until_resume(
    cw: httpx.AsyncClient, register: Register, receiver: Receiver
) -> None:
    await register(receiver.url())
    assert (await cw.post("/_sandbox/callbacks/pause")).status_code == 204
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "one"})
    await cw.patch("/_sandbox/tickets/1002", json={"summary": "two"})
    await asyncio.sleep(0.2)
    assert receiver.received == []
    state = (await cw.get("/_sandbox/callbacks")).json()
    assert (state["paused"], state["pending"]) == (True, 2)
    assert (await cw.post("/_sandbox/callbacks/resume")).status_code == 204
    await eventually(lambda: len(receiver.received) == 2)
    assert sorted(r.payload()["ID"] for r in receiver.received) == [1001, 1002]
    await wait_for_log(cw, 2)
    state = (await cw.get("/_sandbox/callbacks")).json()
    assert (state["paused"], state["pending"]) == (False, 0)


async def test_rotating_keys_changes_the_key_url_and_retires_the_old_one(
    cw: httpx.AsyncClient, atech: dict[str, str], register: Register, receiver: Receiver
) -> None:
    await register(receiver.url())
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "before"})
    await eventually(lambda: len(receiver.received) == 1)
    old_url = receiver.received[0].payload()["Metadata"]["key_url"]
    old_key = await signing_key(cw, old_url, atech)
    rotated = await cw.post("/_sandbox/callbacks/keys/rotate", json={"member": "atech"})
    assert rotated.json() == {"rotated": ["atech"]}
    assert (await cw.get(old_url, headers=atech)).status_code == 404
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "after"})
    await eventually(lambda: len(receiver.received) == 2)
    second = receiver.received[1]
    new_url = second.payload()["Metadata"]["key_url"]
    assert new_url != old_url
    new_key = await signing_key(cw, new_url, atech)
    assert new_key != old_key
    assert second.headers["x-content-signature"] == expected_signature(second.body, new_key)
    assert second.headers["x-content-signature"] != expected_signature(second.body, old_key)
    unknown = await cw.post("/_sandbox/callbacks/keys/rotate", json={"member": "nobody"})
    assert unknown.status_code == 404


async def test_keys_are_per_owner_and_readable_by_any_member(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    headers_for: HeadersFor,
    register: Register,
) -> None:
    bjones = headers_for("bjones")
    await register("https://hooks.example/a")
    await register("https://hooks.example/b", headers=bjones)
    registrations = (await cw.get("/_sandbox/callbacks")).json()["callbacks"]
    keys = {r["owner"]: r["key_id"] for r in registrations}
    assert set(keys) == {"atech", "bjones"}
    assert keys["atech"] != keys["bjones"]
    assert {r["owner"]: r["caller"].startswith("syntaskio+") for r in registrations} == {
        "atech": True,
        "bjones": True,
    }
    atech_key = await signing_key(cw, f"{api}/system/callbackKeys/{keys['atech']}", bjones)
    bjones_key = await signing_key(cw, f"{api}/system/callbackKeys/{keys['bjones']}", atech)
    assert atech_key != bjones_key
    missing = await cw.get(f"{api}/system/callbackKeys/nope", headers=atech)
    assert missing.status_code == 404


async def test_the_legacy_prefix_gives_a_legacy_key_url(
    cw: httpx.AsyncClient, atech: dict[str, str], receiver: Receiver
) -> None:
    legacy = "/v4_6_release/apis/3.0"
    created = await cw.post(
        f"{legacy}/system/callbacks",
        json={"url": receiver.url(), "objectId": 1, "type": "Ticket", "level": "All"},
        headers=atech,
    )
    assert created.status_code == 201
    await cw.post("/_sandbox/tickets/1001/close")
    await eventually(lambda: len(receiver.received) == 1)
    key_url = receiver.received[0].payload()["Metadata"]["key_url"]
    assert key_url.startswith(f"http://sandbox.test{legacy}/system/callbackKeys/")


async def test_reset_forgets_callbacks(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], register: Register
) -> None:
    await register("https://hooks.example/cw")
    await cw.post("/_sandbox/reset")
    assert (await cw.get(f"{api}/system/callbacks", headers=atech)).json() == []
    assert (await cw.get("/_sandbox/callbacks")).json()["callbacks"] == []


async def test_inactive_callbacks_deliver_nothing(
    cw: httpx.AsyncClient, register: Register, receiver: Receiver
) -> None:
    await register(receiver.url(), inactiveFlag=True)
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "x"})
    await asyncio.sleep(0.3)
    assert receiver.received == []
    assert (await cw.get("/_sandbox/callbacks")).json()["pending"] == 0
