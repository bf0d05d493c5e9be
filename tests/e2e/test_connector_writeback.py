"""Write-back in the running system: a command published on
`syntaskio.task-commands.v1` changes ConnectWise once (also when delivered twice), its
outcome is published and readable, and the dashboard follows the change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from e2e_helpers import (
    assigned_open_ticket_ids,
    connect,
    connector,
    connectwise,
    dashboard_ids,
    dashboard_tasks,
    eventually,
    signed_in,
    topic_events,
)

from syntaskio_common import events, topics
from syntaskio_common.commands import TaskCommand, requested_event
from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "fgarcia"  # no other test uses Felix's tickets
TENANT = "acme"


@pytest.fixture(scope="module")
def felix(system: EmbeddedStack) -> Iterator[tuple[httpx.Client, str, str]]:
    user = f"felix-{uuid.uuid4().hex[:6]}@acme-msp.example"
    with signed_in(system, user, TENANT) as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        yield client, integration["id"], user


def send(system: EmbeddedStack, command: TaskCommand) -> None:
    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap_servers)
        await producer.start()
        try:
            record = requested_event(command)
            await producer.send_and_wait(
                topics.TASK_COMMANDS,
                record.value,
                key=record.key,
                headers=list(events.header_pairs(record.headers)),
            )
        finally:
            await producer.stop()

    asyncio.run(produce())


def outcome_events(system: EmbeddedStack, command_id: str) -> list[events.Event]:
    outcomes = (events.TASK_COMMAND_SUCCEEDED, events.TASK_COMMAND_FAILED)
    return [
        event
        for event in topic_events(system, topics.TASK_COMMANDS)
        if event.data.get("command_id") == command_id and event.type in outcomes
    ]


def outcome(system: EmbeddedStack, command: TaskCommand) -> dict[str, Any] | None:
    response = connector(
        system,
        "GET",
        f"/commands/{command.command_id}",
        params={"tenant_id": command.tenant_id, "user_id": command.user_id},
    )
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found if found["status"] not in ("pending", "running") else None


def service_tickets(client: httpx.Client) -> list[str]:
    items = dashboard_tasks(client)
    return sorted(
        (t["external_id"] for t in items if t["source_type"] == "service_ticket"), key=int
    )


def test_log_change_changes_connectwise_once_and_the_task_leaves_the_dashboard(
    system: EmbeddedStack, felix: tuple[httpx.Client, str, str]
) -> None:
    client, integration_id, user = felix
    expected = assigned_open_ticket_ids(system, MEMBER)
    assert eventually(lambda: dashboard_ids(client) == expected)
    ticket = service_tickets(client)[0]
    text = f"Patched the firewall {uuid.uuid4().hex[:6]}"
    command = TaskCommand.model_validate(
        {
            "command_id": str(uuid.uuid4()),
            "tenant_id": TENANT,
            "user_id": user,
            "integration_id": integration_id,
            "source_type": "service_ticket",
            "external_id": ticket,
            "action": "log_change",
            "note": {"text": text, "resolution": True},
            "time_entry": {"hours": 0.75},
            "close": True,
            "requested_at": datetime.now(UTC),
        }
    )
    send(system, command)
    send(system, command)  # delivered twice
    done = eventually(lambda: outcome(system, command))
    assert done, "the command never finished"
    assert done["status"] == "succeeded", done

    notes = [
        n
        for n in connectwise(system, MEMBER, f"service/tickets/{ticket}/notes")
        if n["text"] == text
    ]
    assert [n["id"] for n in notes] == [done["note_id"]]
    entries = connectwise(system, MEMBER, f"time/entries?conditions=chargeToId={ticket}")
    assert [e["id"] for e in entries] == [done["time_entry_id"]]
    assert connectwise(system, MEMBER, f"service/tickets/{ticket}")["closedFlag"] is True
    # Closed in ConnectWise, so gone from the dashboard (fetched back, not guessed).
    assert eventually(lambda: ticket not in dashboard_ids(client))
    published = eventually(lambda: outcome_events(system, command.command_id))
    assert {e.type for e in published} == {events.TASK_COMMAND_SUCCEEDED}
    assert {e.id for e in published} == {f"{command.command_id}/outcome"}


def test_a_command_for_someone_elses_connection_changes_nothing(
    system: EmbeddedStack, felix: tuple[httpx.Client, str, str]
) -> None:
    client, integration_id, _ = felix
    expected = assigned_open_ticket_ids(system, MEMBER)
    assert eventually(lambda: dashboard_ids(client) == expected)
    ticket = service_tickets(client)[-1]
    before = connectwise(system, MEMBER, f"service/tickets/{ticket}")
    command = TaskCommand.model_validate(
        {
            "command_id": str(uuid.uuid4()),
            "tenant_id": TENANT,
            "user_id": "mallory@acme-msp.example",
            "integration_id": integration_id,
            "source_type": "service_ticket",
            "external_id": ticket,
            "action": "complete",
            "requested_at": datetime.now(UTC),
        }
    )
    send(system, command)
    done = eventually(lambda: outcome(system, command))
    assert done, "the command never finished"
    assert done["status"] == "rejected"
    assert connectwise(system, MEMBER, f"service/tickets/{ticket}") == before
    # Felix cannot read Mallory's command, and Mallory sees it only as hers.
    hidden = connector(
        system,
        "GET",
        f"/commands/{command.command_id}",
        params={"tenant_id": "evil", "user_id": command.user_id},
    )
    assert hidden.status_code == 404


def task_of(client: httpx.Client, external_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        t for t in dashboard_tasks(client) if t["external_id"] == external_id
    )
    return found


def finished(client: httpx.Client, accepted: httpx.Response) -> dict[str, Any] | None:
    status = client.get(accepted.json()["status_url"])
    assert status.status_code == 200, status.text
    view: dict[str, Any] = status.json()
    return view if view["status"] not in ("pending", "running") else None


def test_the_dashboard_api_writes_back_once_per_idempotency_key(
    system: EmbeddedStack, felix: tuple[httpx.Client, str, str]
) -> None:
    client, _, _ = felix
    expected = assigned_open_ticket_ids(system, MEMBER)
    assert eventually(lambda: dashboard_ids(client) == expected)
    tickets = service_tickets(client)
    ticket = tickets[len(tickets) // 2]
    task = task_of(client, ticket)
    text = f"Swapped the switch {uuid.uuid4().hex[:6]}"
    note_key = str(uuid.uuid4())

    def add_note(body: dict[str, Any], key: str = note_key) -> httpx.Response:
        return client.post(
            f"/api/v1/tasks/{task['id']}/notes", json=body, headers={"Idempotency-Key": key}
        )

    accepted = add_note({"text": text, "internal": True})
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["location"] == accepted.json()["status_url"]
    retried = add_note({"text": text, "internal": True})  # the answer was "lost"
    assert retried.status_code == 202
    assert retried.json()["command_id"] == accepted.json()["command_id"]
    reused = add_note({"text": "something else"})
    assert reused.status_code == 422
    assert "Idempotency-Key" in reused.json()["detail"]
    unkeyed = client.post(f"/api/v1/tasks/{task['id']}/notes", json={"text": text})
    assert unkeyed.status_code == 422

    done = eventually(lambda: finished(client, accepted))
    assert done, "the note command never finished"
    assert done["status"] == "succeeded", done
    assert done["task_id"] == task["id"]
    assert done["action"] == "add_note"
    notes = [
        n
        for n in connectwise(system, MEMBER, f"service/tickets/{ticket}/notes")
        if n["text"] == text
    ]
    assert len(notes) == 1
    assert notes[0]["internalAnalysisFlag"] is True

    closing = client.post(
        f"/api/v1/tasks/{task['id']}/complete", headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert closing.status_code == 202, closing.text
    closed = eventually(lambda: finished(client, closing))
    assert closed, "the complete command never finished"
    assert closed["status"] == "succeeded", closed
    assert connectwise(system, MEMBER, f"service/tickets/{ticket}")["closedFlag"] is True
    assert eventually(lambda: ticket not in dashboard_ids(client))
