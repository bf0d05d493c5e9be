"""Object-level authorization, tried on purpose: Alice has a ConnectWise connection, tasks
and a write-back command; users of another tenant (one with her very user id), and a
colleague in her own tenant, try every route with her ids. Each is answered exactly as
for an id that does not exist (404, never 403), nothing of hers shows in their lists or
streams, and nothing of hers changes.

Her company also has its own connection (an admin connected it and mapped her to a
member): every admin route is refused to technicians (403, before anything is asked, her
colleague and Alice herself included), and another company's admins (one with her user
id) are answered on her company's objects exactly as for ids that do not exist."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack, ExitStack, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from e2e_helpers import (
    assigned_open_ticket_ids,
    connect,
    connector,
    connectwise,
    dashboard_ids,
    dashboard_tasks,
    eventually,
    jobs,
    sandbox,
    sandbox_keys,
    signed_in,
    topic_events,
    unassigned_open_ticket,
)

from syntaskio_common import events, topics
from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "hnguyen"  # Bob connects the same member; the ticket changed is made for the test
COMPANY_MEMBER = "kbrown"  # Alice's member under her company's connection
API_MEMBER = "syntaskio-api"  # whose keys connect a company
ADMIN = ("technician", "admin")
PROBLEM_JSON = "application/problem+json"
REPLY = {"text": "Any news on this?"}
ATTEMPT = "BOLA attempt"  # in every note and time entry an intruder tries to write
SNOOZE = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0).isoformat()  # Alice's


@dataclass
class Owner:
    client: httpx.Client
    user_id: str
    tenant_id: str
    integration_id: str
    task: dict[str, Any]
    found_task_id: str  # a ticket she found by searching (not on her dashboard)
    notification_id: str  # she was told of a customer's reply
    command_id: str
    idempotency_key: str
    note: dict[str, str]
    cursor: str


@dataclass
class Intruder:
    name: str
    client: httpx.Client
    user_id: str
    tenant_id: str


def new_key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def synced(client: httpx.Client, ticket: str) -> dict[str, Any]:
    """The user's task for the ticket, once it has been synced."""

    def found() -> dict[str, Any] | None:
        tasks = dashboard_tasks(client)
        return next((t for t in tasks if t["external_id"] == ticket), None)

    task: dict[str, Any] | None = eventually(found, interval=2)
    assert task, f"ticket {ticket} never synced"
    return task


@pytest.fixture(scope="module")
def alice(system: EmbeddedStack) -> Iterator[Owner]:
    user, tenant = f"alice-{uuid.uuid4().hex[:6]}@acme-msp.example", f"bola-{uuid.uuid4().hex[:8]}"
    summary = f"Server room too warm {uuid.uuid4().hex[:6]}"
    made = sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": MEMBER})
    with signed_in(system, user, tenant) as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        task = synced(client, str(made.json()["id"]))
        key, note = str(uuid.uuid4()), {"text": f"Alice's note {uuid.uuid4().hex[:6]}"}
        requested = client.post(
            f"/api/v1/tasks/{task['id']}/notes", json=note, headers={"Idempotency-Key": key}
        )
        assert requested.status_code == 202, requested.text
        page = client.get("/api/v1/tasks", params={"limit": 1}).json()
        assert page["next_cursor"], page
        # Her plan for the day: the task snoozed for a week (what no one else may touch).
        snoozed = client.put(f"/api/v1/tasks/{task['id']}/plan", json={"snoozed_until": SNOOZE})
        assert snoozed.status_code == 200, snoozed.text
        # A ticket nobody is assigned, found by her search: hers alone to open.
        nobodys = unassigned_open_ticket(system, MEMBER)
        found = client.get("/api/v1/tickets/search", params={"q": f"#{nobodys['id']}"})
        assert found.status_code == 200, found.text
        [found_ticket] = found.json()["tickets"]
        # Her customer replies: she is told.
        sandbox(system, "POST", f"/tickets/{task['external_id']}/customer-reply", json=REPLY)
        [told] = eventually(
            lambda: [
                n
                for n in client.get("/api/v1/notifications").json()["items"]
                if n["kind"] == "customer_reply"
            ]
        )
        yield Owner(
            client=client,
            user_id=user,
            tenant_id=tenant,
            integration_id=integration["id"],
            task=task,
            found_task_id=found_ticket["task_id"],
            notification_id=told["id"],
            command_id=requested.json()["command_id"],
            idempotency_key=key,
            note=note,
            cursor=page["next_cursor"],
        )
        # Not synced for the rest of the session.
        assert client.delete(f"/api/v1/integrations/{integration['id']}").status_code == 200


@pytest.fixture(scope="module")
def intruders(system: EmbeddedStack, alice: Owner) -> Iterator[dict[str, Intruder]]:
    """Bob (another tenant, connected to the same ConnectWise member: the same tickets
    are his tasks too), Alice's user id in another tenant, and Carol (Alice's tenant)."""
    who = {
        "other tenant": (f"bob-{uuid.uuid4().hex[:6]}@other-msp.example", "other-msp"),
        "same user id, other tenant": (alice.user_id, f"{alice.tenant_id}-x"),
        "same tenant": (f"carol-{uuid.uuid4().hex[:6]}@acme-msp.example", alice.tenant_id),
    }
    with ExitStack() as stack:
        found = {
            name: Intruder(name, stack.enter_context(signed_in(system, user, tenant)), user, tenant)
            for name, (user, tenant) in who.items()
        }
        bob = found["other tenant"].client
        connected = connect(bob, system, MEMBER)
        assert connected.status_code == 201, connected.text
        expected = assigned_open_ticket_ids(system, MEMBER)
        assert eventually(lambda: dashboard_ids(bob) == expected), "Bob's tickets never synced"
        yield found
        assert bob.delete(f"/api/v1/integrations/{connected.json()['id']}").status_code == 200


@dataclass
class Company:
    """Alice's company's own connection, made by its admin, with Carla (a colleague of
    Alice's without a connection of her own) mapped under it. Alice, who has her own,
    cannot be mapped: one source of a person's ConnectWise work."""

    admin: httpx.Client
    admin_id: str
    integration_id: str
    carla: httpx.Client
    carla_id: str


def api_member_keys(system: EmbeddedStack) -> dict[str, Any]:
    keys = sandbox_keys(system, API_MEMBER)
    return {
        "site": f"http://{system.sandbox_site}",
        **{name: keys[name] for name in ("company_id", "public_key", "private_key")},
    }


def mapping_path(integration_id: str, user_id: str) -> str:
    return f"/api/v1/admin/integrations/{integration_id}/mappings/{quote(user_id, safe='')}"


@pytest.fixture(scope="module")
def her_company(system: EmbeddedStack, alice: Owner) -> Iterator[Company]:
    admin_id = f"alan-{uuid.uuid4().hex[:6]}@acme-msp.example"
    carla_id = f"carla-{uuid.uuid4().hex[:6]}@acme-msp.example"
    with (
        signed_in(system, admin_id, alice.tenant_id, ADMIN, address="203.0.113.240") as admin,
        signed_in(system, carla_id, alice.tenant_id, address="203.0.113.241") as carla,
    ):
        connected = admin.post(
            "/api/v1/admin/integrations/connectwise/api-key", json=api_member_keys(system)
        )
        assert connected.status_code == 201, connected.text
        integration_id = connected.json()["id"]
        # Alice has a connection of her own: the company's does not sync her too.
        refused = admin.put(
            mapping_path(integration_id, alice.user_id), json={"member_identifier": COMPANY_MEMBER}
        )
        assert refused.status_code == 409, refused.text
        assert "connection of their own" in refused.json()["detail"]
        mapped = admin.put(
            mapping_path(integration_id, carla_id), json={"member_identifier": COMPANY_MEMBER}
        )
        assert mapped.status_code == 200, mapped.text
        yield Company(admin, admin_id, integration_id, carla, carla_id)
        # Not synced for the rest of the session.
        assert admin.delete(f"/api/v1/admin/integrations/{integration_id}").status_code == 200


@pytest.fixture(scope="module")
def outsiders(system: EmbeddedStack, alice: Owner) -> Iterator[dict[str, Intruder]]:
    """Admins of other companies: one of its own, and one with Alice's very user id (each
    signing in from an address of its own: sign-ins are limited per address)."""
    who = {
        "another company's admin": (f"olga-{uuid.uuid4().hex[:6]}@other-msp.example", "other-msp"),
        "same user id, admin elsewhere": (alice.user_id, f"{alice.tenant_id}-y"),
    }
    with ExitStack() as stack:
        yield {
            name: Intruder(
                name,
                stack.enter_context(
                    signed_in(system, user, tenant, ADMIN, address=f"203.0.113.{250 + number}")
                ),
                user,
                tenant,
            )
            for number, (name, (user, tenant)) in enumerate(who.items())
        }


@pytest.fixture(scope="module")
def bobs_command(alice: Owner, intruders: dict[str, Intruder]) -> dict[str, Any]:
    """Bob asks for a note on his own task for Alice's ticket, with the Idempotency-Key
    Alice used: his own request, not hers (nor refused as the key's reuse, which would
    tell him someone used it)."""
    bob = intruders["other tenant"].client
    task = synced(bob, alice.task["external_id"])
    assert task["id"] != alice.task["id"]
    response = bob.post(
        f"/api/v1/tasks/{task['id']}/notes",
        json={"text": "Bob's own note"},
        headers={"Idempotency-Key": alice.idempotency_key},
    )
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


def routes(alice: Owner) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every route that names one of Alice's objects: (method, path, request)."""
    task = f"/api/v1/tasks/{alice.task['id']}"
    integration = f"/api/v1/integrations/{alice.integration_id}"
    found = f"/api/v1/tasks/{alice.found_task_id}"
    attempt = {"text": ATTEMPT}
    return {
        "task": ("GET", task, {}),
        "ticket detail": ("GET", f"{task}/detail", {}),
        "start a timer": ("PUT", f"{task}/timer", {"json": {"state": "running"}}),
        "stop a timer": ("POST", f"{task}/timer/stop", {"headers": new_key()}),
        "discard a timer": ("DELETE", f"{task}/timer", {}),
        "pin to today": ("PUT", f"{task}/plan", {"json": {"pinned": True}}),
        "hide": ("PUT", f"{task}/plan", {"json": {"hidden": True}}),
        "clear the plan": ("DELETE", f"{task}/plan", {}),
        "complete": ("POST", f"{task}/complete", {"headers": new_key()}),
        "status change": (
            "POST",
            f"{task}/status",
            {"json": {"status_id": 1}, "headers": new_key()},
        ),
        "note": ("POST", f"{task}/notes", {"json": attempt, "headers": new_key()}),
        "note with her key": (
            "POST",
            f"{task}/notes",
            {"json": alice.note, "headers": {"Idempotency-Key": alice.idempotency_key}},
        ),
        "time entry": (
            "POST",
            f"{task}/time-entries",
            {"json": {"hours": 0.25, "notes": ATTEMPT}, "headers": new_key()},
        ),
        "log a change": (
            "POST",
            f"{task}/log-change",
            {"json": {"note": attempt, "close": True}, "headers": new_key()},
        ),
        "found ticket": ("GET", found, {}),
        "found ticket's detail": ("GET", f"{found}/detail", {}),
        "note on a found ticket": (
            "POST",
            f"{found}/notes",
            {"json": attempt, "headers": new_key()},
        ),
        "command": ("GET", f"/api/v1/commands/{alice.command_id}", {}),
        "integration": ("GET", integration, {}),
        "sync jobs": ("GET", f"{integration}/sync-jobs", {}),
        "sync now": ("POST", f"{integration}/sync", {}),
        "sync options": ("PUT", f"{integration}/sync-options", {"json": {"project_phases": True}}),
        "disconnect": ("DELETE", integration, {}),
    }


# An answer as a client sees it: status, content type, and the problem's title and detail.
Answer = tuple[int, str, Any]
Attempts = dict[tuple[str, str], tuple[Answer, Answer]]


def answer(response: httpx.Response) -> Answer:
    content_type = response.headers.get("content-type", "")
    body = response.json() if content_type == PROBLEM_JSON else response.text
    problem = (body.get("title"), body.get("detail")) if isinstance(body, dict) else body
    return response.status_code, content_type, problem


@pytest.fixture(scope="module")
def attempts(alice: Owner, intruders: dict[str, Intruder]) -> Attempts:
    """Every intruder on every route with Alice's ids, beside the same request with a
    random id in their place (what "does not exist" looks like)."""
    mine = {alice.task["id"], alice.found_task_id, alice.command_id, alice.integration_id}
    made: Attempts = {}
    for intruder in intruders.values():
        for name, (method, path, request) in routes(alice).items():
            tried = intruder.client.request(method, path, **request)
            random_path = path
            for real in mine:
                random_path = random_path.replace(real, str(uuid.uuid4()))
            fresh = {**request, "headers": new_key()} if "headers" in request else request
            missing = intruder.client.request(method, random_path, **fresh)
            made[intruder.name, name] = (answer(tried), answer(missing))
    return made


def test_another_users_objects_are_answered_as_if_they_did_not_exist(
    attempts: Attempts,
) -> None:
    wrong = {
        f"{who} → {route}: {tried} (no such id: {missing})"
        for (who, route), (tried, missing) in attempts.items()
        if tried[0] != 404 or tried[1] != PROBLEM_JSON or tried != missing
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_nothing_of_the_owners_shows_in_anyone_elses_lists(
    alice: Owner, intruders: dict[str, Intruder]
) -> None:
    hers = {
        alice.task["id"],
        alice.found_task_id,
        alice.notification_id,
        alice.integration_id,
        alice.command_id,
    }
    ticket = alice.task["external_id"]
    for intruder in intruders.values():
        client = intruder.client
        listings = {
            "tasks": client.get("/api/v1/tasks", params={"limit": 500}),
            "her cursor": client.get("/api/v1/tasks", params={"cursor": alice.cursor}),
            "her ticket": client.get("/api/v1/tasks", params={"q": f"#{ticket}"}),
            "facets": client.get("/api/v1/tasks/facets"),
            "integrations": client.get("/api/v1/integrations"),
            "my day": client.get("/api/v1/my-day"),
            "notifications": client.get("/api/v1/notifications"),
            # Found as the intruder's own member, under their own ids (409: not connected).
            "search": client.get("/api/v1/tickets/search", params={"q": f"#{ticket}"}),
        }
        for name, listing in listings.items():
            assert listing.status_code in (200, 400, 409), (
                f"{intruder.name}, {name}: {listing.text}"
            )
            text = listing.text
            assert not [h for h in hers if h in text], f"{intruder.name} sees hers in {name}"
        tasks = listings["tasks"].json()["items"]
        assert {(t["tenant_id"], t["user_id"]) for t in tasks} <= {
            (intruder.tenant_id, intruder.user_id)
        }
        integrations = listings["integrations"].json()
        assert {(i["tenant_id"], i["user_id"]) for i in integrations} <= {
            (intruder.tenant_id, intruder.user_id)
        }
        # (Until it holds: the intruder's own tasks may still be arriving.)
        assert eventually(partial(counted_as_listed, client), timeout=30), intruder.name


def test_only_an_admin_of_her_company_lists_her_connection(
    system: EmbeddedStack, alice: Owner, intruders: dict[str, Intruder], her_company: Company
) -> None:
    """The tenant's connection list is for its admins: technicians (her colleague
    included) are refused before anything is asked, another company's admin sees only
    their own company's."""
    for intruder in intruders.values():
        refused = intruder.client.get("/api/v1/admin/integrations")
        assert refused.status_code == 403, f"{intruder.name}: {refused.text}"
        assert refused.headers["content-type"] == PROBLEM_JSON
    assert alice.client.get("/api/v1/admin/integrations").status_code == 403
    admin = ("admin",)
    with signed_in(system, alice.user_id, f"other-{uuid.uuid4().hex[:8]}", admin) as outsider:
        assert outsider.get("/api/v1/admin/integrations").json() == []
    with signed_in(system, f"admin-{uuid.uuid4().hex[:6]}", alice.tenant_id, admin) as hers:
        listed = hers.get("/api/v1/admin/integrations").json()
        assert {(i["id"], i["user_id"], i["scope"]) for i in listed} == {
            (alice.integration_id, alice.user_id, "personal"),
            (her_company.integration_id, "", "tenant"),
        }
        assert {i["state"] for i in listed} <= {"active", "syncing"}, listed


def counted_as_listed(client: httpx.Client) -> bool:
    """The facets count exactly the user's tasks (none of anyone else's)."""
    facets = client.get("/api/v1/tasks/facets").json()
    counted = sum(board["count"] for board in facets["board"])
    return bool(counted == len(dashboard_tasks(client)))


def test_her_task_is_in_no_one_elses_order_of_the_day(
    alice: Owner, intruders: dict[str, Intruder]
) -> None:
    for intruder in intruders.values():
        order = "/api/v1/my-day/order"
        hers = intruder.client.put(order, json={"task_ids": [alice.task["id"]]})
        missing = intruder.client.put(order, json={"task_ids": [str(uuid.uuid4())]})
        assert hers.status_code == 404, f"{intruder.name}: {hers.text}"
        assert answer(hers) == answer(missing), intruder.name


def test_no_one_else_marks_her_notifications_read(
    alice: Owner, intruders: dict[str, Intruder]
) -> None:
    for intruder in intruders.values():
        for body in ({"ids": [alice.notification_id]}, {"all": True}):
            marked = intruder.client.post("/api/v1/notifications/read", json=body)
            assert marked.status_code == 204, f"{intruder.name}: {marked.text}"
    [hers] = [
        n
        for n in alice.client.get("/api/v1/notifications").json()["items"]
        if n["id"] == alice.notification_id
    ]
    assert hers["read"] is False


def test_the_same_idempotency_key_is_anothers_own_request(
    alice: Owner, intruders: dict[str, Intruder], bobs_command: dict[str, Any]
) -> None:
    bob = intruders["other tenant"].client
    assert bobs_command["command_id"] != alice.command_id
    assert bob.get(f"/api/v1/commands/{bobs_command['command_id']}").status_code == 200
    assert bob.get(f"/api/v1/commands/{alice.command_id}").status_code == 404
    assert alice.client.get(f"/api/v1/commands/{bobs_command['command_id']}").status_code == 404


def test_nothing_of_the_owners_changed(
    system: EmbeddedStack,
    alice: Owner,
    intruders: dict[str, Intruder],
    bobs_command: dict[str, Any],
    attempts: Attempts,
) -> None:
    assert attempts
    client = alice.client
    # Her connection: still there and active, listed, never synced on anyone's request.
    integration = client.get(f"/api/v1/integrations/{alice.integration_id}")
    assert integration.status_code == 200, integration.text
    assert integration.json()["status"] == "active"
    # Her options: as she left them (phases off), here and as the connector keeps them.
    assert integration.json()["sync"] is not None, integration.text
    assert integration.json()["options"] == {"project_phases": False, "sync_interval_minutes": None}
    status = connector(
        system,
        "GET",
        f"/integrations/{alice.integration_id}/sync-status",
        params={"tenant_id": alice.tenant_id},
    )
    assert status.json()["options"] == {"project_phases": False, "sync_interval_minutes": None}, (
        status.text
    )
    assert [i["id"] for i in client.get("/api/v1/integrations").json()] == [alice.integration_id]
    history = jobs(system, alice.integration_id, alice.tenant_id)
    assert "manual" not in {job["trigger"] for job in history}, history
    # Her task: still hers and open; her command: hers, and it went through.
    task = client.get(f"/api/v1/tasks/{alice.task['id']}")
    assert task.status_code == 200, task.text
    assert task.json()["status"] != "completed"
    assert task.json()["user_id"] == alice.user_id
    # Her plan: still snoozed as she left it, not pinned, hidden or cleared by anyone.
    aside = client.get("/api/v1/my-day").json()["set_aside"]
    assert [t["id"] for t in aside] == [alice.task["id"]]
    plan = aside[0]["plan"]
    assert datetime.fromisoformat(plan.pop("snoozed_until")) == datetime.fromisoformat(SNOOZE)
    assert plan == {"pinned": False, "hidden": False, "order": None}

    def finished() -> dict[str, Any] | None:
        view: dict[str, Any] = client.get(f"/api/v1/commands/{alice.command_id}").json()
        return view if view["status"] not in ("pending", "running") else None

    done = eventually(finished)
    assert done, "Alice's command never finished"
    assert done["status"] == "succeeded", done

    # Only Alice's command and Bob's own were published; none for her task from others.
    requested = [
        e.data
        for e in topic_events(system, topics.TASK_COMMANDS)
        if e.type == events.TASK_COMMAND_REQUESTED
    ]
    on_hers = {c["command_id"] for c in requested if c["integration_id"] == alice.integration_id}
    assert on_hers == {alice.command_id}
    theirs = {(i.tenant_id, i.user_id) for i in intruders.values()}
    by_them = {c["command_id"] for c in requested if (c["tenant_id"], c["user_id"]) in theirs}
    assert by_them == {bobs_command["command_id"]}

    # And ConnectWise: the ticket is open, with Alice's note, and nothing from them.
    ticket = alice.task["external_id"]
    assert connectwise(system, MEMBER, f"service/tickets/{ticket}")["closedFlag"] is False
    notes = [n["text"] for n in connectwise(system, MEMBER, f"service/tickets/{ticket}/notes")]
    assert alice.note["text"] in notes
    assert not [n for n in notes if ATTEMPT in n]
    entries = connectwise(system, MEMBER, "time/entries", conditions=f"chargeToId={ticket}")
    assert not [e for e in entries if ATTEMPT in (e.get("notes") or "")]


async def test_no_one_elses_stream_carries_the_owners_changes(
    system: EmbeddedStack, alice: Owner, intruders: dict[str, Intruder]
) -> None:
    ticket = alice.task["external_id"]
    title = f"Changed while everyone watches {uuid.uuid4().hex[:6]}"

    def hers(event: dict[str, Any]) -> bool:
        return alice.task["id"] in str(event["data"]) or alice.integration_id in str(event)

    def upserted(task_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
        # With the new title: an earlier change to the ticket (the note Alice added, fetched
        # back) may still be on its way when the streams open.
        def match(event: dict[str, Any]) -> bool:
            if event["event"] != "task.upserted":
                return False
            task = event["data"]["task"]
            return bool(
                task["external_id"] == ticket
                and task["title"] == title
                and task_id in (None, task["id"])
            )

        return match

    async with AsyncExitStack() as watching:
        alices = await watching.enter_async_context(Watcher(alice.client))
        opened = (await alices.until(caught_up))["id"]
        theirs = {
            name: await watching.enter_async_context(Watcher(intruder.client))
            for name, intruder in intruders.items()
        }
        for watcher in theirs.values():
            await watcher.until(caught_up)
        await asyncio.to_thread(
            sandbox, system, "PATCH", f"/tickets/{ticket}", json={"summary": title}
        )
        seen = await alices.until(upserted(alice.task["id"]))
        assert seen["data"]["task"]["title"] == title
        # Bob's own task for the same ticket changes too: the others' streams are live.
        await theirs["other tenant"].until(upserted())
        await asyncio.sleep(3)  # time enough for anything else on its way to them
    for name, watcher in theirs.items():
        assert not [e for e in watcher.events if hers(e)], f"{name}: {watcher.events}"

    # Resuming from an id of Alice's stream: nothing of hers is replayed to them either.
    async with AsyncExitStack() as watching:
        resumed = {
            name: await watching.enter_async_context(Watcher(intruder.client, opened))
            for name, intruder in intruders.items()
        }
        for watcher in resumed.values():
            await watcher.until(caught_up)
        await resumed["other tenant"].until(upserted())
        await asyncio.sleep(2)
    for name, watcher in resumed.items():
        assert not [e for e in watcher.events if hers(e)], f"{name}: {watcher.events}"


def caught_up(event: dict[str, Any]) -> bool:
    return event["event"] in ("ready", "reset")


class Watcher:
    """A dashboard's task stream (Server-Sent Events) read in the background, every event
    kept; unlike `EventStream`, it is closed at once (the read is cancelled)."""

    def __init__(self, client: httpx.Client, last_event_id: str | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self._client = httpx.AsyncClient(
            base_url=client.base_url,
            cookies=client.cookies,
            headers={"Last-Event-ID": last_event_id} if last_event_id else {},
            timeout=httpx.Timeout(10.0, read=None),
        )
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._reader is not None
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader
        await self._client.aclose()

    async def _read(self) -> None:
        fields: dict[str, str] = {}
        async with self._client.stream("GET", "/api/v1/tasks/stream") as response:
            assert response.status_code == 200, response.status_code
            async for line in response.aiter_lines():
                if line == "" and "event" in fields:
                    self.events.append({**fields, "data": json.loads(fields.get("data", "null"))})
                    fields = {}
                elif line and not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")

    async def until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first event so far or to come that is `wanted` (within a minute)."""
        try:
            async with asyncio.timeout(60):
                while not (found := next((e for e in self.events if wanted(e)), None)):
                    assert self._reader is not None
                    if self._reader.done():
                        self._reader.result()  # the read failed: say why
                        raise AssertionError(f"the stream ended: {self.events}")
                    await asyncio.sleep(0.05)
                return found
        except TimeoutError:
            raise AssertionError(f"no such event within a minute: {self.events}") from None


# -- the admin console's routes ----------------------------------------------------------


def admin_routes(alice: Owner, company: Company) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every admin route that names one of her company's objects: its own connection and
    Alice's personal one, and Alice's mapping."""
    found: dict[str, tuple[str, str, dict[str, Any]]] = {}
    for whose, integration_id in (
        ("company", company.integration_id),
        ("hers", alice.integration_id),
    ):
        base = f"/api/v1/admin/integrations/{integration_id}"
        mapping = mapping_path(integration_id, alice.user_id)
        member = {"json": {"member_identifier": "jsmith"}}
        found |= {
            f"{whose}: get": ("GET", base, {}),
            f"{whose}: sync jobs": ("GET", f"{base}/sync-jobs", {}),
            f"{whose}: sync now": ("POST", f"{base}/sync", {}),
            f"{whose}: full resync": ("POST", f"{base}/sync?resync=true", {}),
            f"{whose}: pause": ("POST", f"{base}/pause", {}),
            f"{whose}: resume": ("POST", f"{base}/resume", {}),
            f"{whose}: mappings": ("GET", f"{base}/mappings", {}),
            f"{whose}: propose": ("POST", f"{base}/mappings/propose", {}),
            f"{whose}: map her": ("PUT", mapping, member),
            f"{whose}: unmap her": ("DELETE", mapping, {}),
            f"{whose}: disconnect": ("DELETE", base, {}),
        }
    return found


# Company settings that turn ConnectWise off (what an intruder would want).
OFF = {"connectwise_enabled": False, "default_time_minutes": 15, "log_change_status": None}


def every_admin_route(
    system: EmbeddedStack, alice: Owner, company: Company
) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """The above, and the admin routes that name nothing (lists, connecting)."""
    keys = api_member_keys(system)
    return {
        **admin_routes(alice, company),
        "users": ("GET", "/api/v1/admin/users", {}),
        "integrations": ("GET", "/api/v1/admin/integrations", {}),
        "audit": (
            "GET",
            "/api/v1/admin/audit",
            {"params": {"integration_id": company.integration_id}},
        ),
        "connect": ("POST", "/api/v1/admin/integrations/connectwise/api-key", {"json": keys}),
        "oauth": (
            "POST",
            "/api/v1/admin/integrations/connectwise/oauth/start",
            {"json": {"site": keys["site"], "company_id": keys["company_id"]}},
        ),
        "settings": ("PUT", "/api/v1/admin/settings", {"json": OFF}),
    }


@pytest.fixture(scope="module")
def admin_attempts(
    system: EmbeddedStack,
    alice: Owner,
    her_company: Company,
    intruders: dict[str, Intruder],
    outsiders: dict[str, Intruder],
) -> Attempts:
    """Technicians (Alice among them) on every admin route, and other companies' admins on
    every route naming her company's objects; each beside the same request with random
    ids in place of hers."""
    hers = {her_company.integration_id, alice.integration_id}
    technicians = [
        *intruders.values(),
        Intruder("Alice", alice.client, alice.user_id, alice.tenant_id),
    ]
    tried: list[tuple[Intruder, dict[str, tuple[str, str, dict[str, Any]]]]] = [
        *((who, every_admin_route(system, alice, her_company)) for who in technicians),
        *((who, admin_routes(alice, her_company)) for who in outsiders.values()),
    ]
    made: Attempts = {}
    for who, routes_tried in tried:
        for name, (method, path, request) in routes_tried.items():
            answered = who.client.request(method, path, **request)
            random_path = path
            for real in hers:
                random_path = random_path.replace(real, str(uuid.uuid4()))
            missing = who.client.request(method, random_path, **request)
            made[who.name, name] = (answer(answered), answer(missing))
    return made


def test_technicians_are_refused_every_admin_route(
    admin_attempts: Attempts, intruders: dict[str, Intruder]
) -> None:
    technicians = {*intruders, "Alice"}
    tried = {key: value for key, value in admin_attempts.items() if key[0] in technicians}
    assert len(tried) == len(technicians) * 28, sorted(tried)
    needs_admin = (403, PROBLEM_JSON, ("Forbidden", "This needs the admin role in your company."))
    wrong = {
        f"{who} → {route}: {answered} (random ids: {missing})"
        for (who, route), (answered, missing) in tried.items()
        if answered != needs_admin or missing != needs_admin
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_another_companys_admin_finds_none_of_her_companys_objects(
    admin_attempts: Attempts, outsiders: dict[str, Intruder]
) -> None:
    tried = {key: value for key, value in admin_attempts.items() if key[0] in outsiders}
    assert len(tried) == len(outsiders) * 22, sorted(tried)
    wrong = {
        f"{who} → {route}: {answered} (no such id: {missing})"
        for (who, route), (answered, missing) in tried.items()
        if answered[0] != 404 or answered[1] != PROBLEM_JSON or answered != missing
    }
    assert not wrong, "\n".join(sorted(wrong))


def test_a_companys_settings_are_its_own(
    alice: Owner, outsiders: dict[str, Intruder], admin_attempts: Attempts
) -> None:
    """Another company's admin turning ConnectWise off turns off theirs, not hers (and no
    technician's attempt above changed hers)."""
    outsider = next(iter(outsiders.values()))
    changed = outsider.client.put("/api/v1/admin/settings", json=OFF)
    assert changed.status_code == 200, changed.text
    assert outsider.client.get("/api/v1/settings").json()["connectwise_enabled"] is False
    hers = alice.client.get("/api/v1/settings")
    assert hers.status_code == 200, hers.text
    assert hers.json()["connectwise_enabled"] is True
    restored = outsider.client.put(
        "/api/v1/admin/settings", json={**OFF, "connectwise_enabled": True}
    )
    assert restored.status_code == 200, restored.text


def test_another_companys_admin_lists_none_of_hers(
    alice: Owner, her_company: Company, outsiders: dict[str, Intruder]
) -> None:
    hers = {her_company.integration_id, alice.integration_id, her_company.admin_id}
    for outsider in outsiders.values():
        client = outsider.client
        users = client.get("/api/v1/admin/users")
        assert users.status_code == 200, users.text
        assert {u["tenant_id"] for u in users.json()} <= {outsider.tenant_id}, users.text
        listings = {
            "users": users,
            "integrations": client.get("/api/v1/admin/integrations"),
            "audit": client.get("/api/v1/admin/audit", params={"limit": 500}),
            "her connection's audit": client.get(
                "/api/v1/admin/audit", params={"integration_id": her_company.integration_id}
            ),
            "her actions": client.get("/api/v1/admin/audit", params={"user_id": alice.user_id}),
        }
        for name, listing in listings.items():
            assert listing.status_code == 200, f"{outsider.name}, {name}: {listing.text}"
            assert not [h for h in hers if h in listing.text], (
                f"{outsider.name} sees hers in {name}"
            )
            assert alice.tenant_id not in listing.text.replace(outsider.tenant_id, ""), name
        assert listings["her connection's audit"].json() == []


def test_a_technician_sees_only_their_own_mapping(
    system: EmbeddedStack, alice: Owner, her_company: Company, intruders: dict[str, Intruder]
) -> None:
    """Her colleagues see the company's connection with no mapping (Carla's is hers); the
    others' companies have no connection of their own."""
    for intruder in intruders.values():
        view = intruder.client.get("/api/v1/integrations/tenant")
        if intruder.tenant_id == alice.tenant_id:
            assert view.status_code == 200, view.text
            assert view.json()["integration_id"] == her_company.integration_id
            assert view.json()["mapping"] is None, view.text
            assert COMPANY_MEMBER not in view.text
        else:
            assert view.status_code == 404, f"{intruder.name}: {view.text}"
            assert view.headers["content-type"] == PROBLEM_JSON
            assert her_company.integration_id not in view.text
            requested = intruder.client.post(
                "/api/v1/integrations/tenant/mapping-request",
                json={"member_identifier": COMPANY_MEMBER},
            )
            assert requested.status_code == 404, f"{intruder.name}: {requested.text}"
    assert alice.client.get("/api/v1/integrations/tenant").json()["mapping"] is None
    mine = her_company.carla.get("/api/v1/integrations/tenant")
    assert mine.status_code == 200, mine.text
    assert mine.json()["mapping"]["member_identifier"] == COMPANY_MEMBER
    assert mine.json()["mapping"]["state"] == "confirmed"
    # Mapped, Carla does not connect her own account too.
    own = connect(her_company.carla, system, "kbrown")
    assert own.status_code == 409, own.text
    assert "already syncs your work" in own.json()["detail"]


def test_nothing_of_her_companys_changed(
    system: EmbeddedStack, alice: Owner, her_company: Company, admin_attempts: Attempts
) -> None:
    assert admin_attempts
    admin = her_company.admin
    for integration_id in (her_company.integration_id, alice.integration_id):
        shown = admin.get(f"/api/v1/admin/integrations/{integration_id}")
        assert shown.status_code == 200, shown.text
        assert shown.json()["status"] == "active", shown.text
        history = jobs(system, integration_id, alice.tenant_id)
        assert "manual" not in {job["trigger"] for job in history}, history
    mappings = admin.get(f"/api/v1/admin/integrations/{her_company.integration_id}/mappings")
    assert [(m["user_id"], m["member_identifier"], m["state"]) for m in mappings.json()] == [
        (her_company.carla_id, COMPANY_MEMBER, "confirmed")
    ]
    audit = admin.get("/api/v1/admin/audit", params={"limit": 500}).json()
    done = {record["action"] for record in audit if not record["action"].startswith("credentials.")}
    assert done == {"connected", "mapping.confirmed"}, audit
    assert {r["user_id"] for r in audit if r["user_id"]} <= {her_company.admin_id, alice.user_id}
