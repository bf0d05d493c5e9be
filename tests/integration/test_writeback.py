"""Write-back commands executed against the ConnectWise sandbox (in-process) with the
real database: each command changes ConnectWise exactly once — redelivered, cut off
mid-step, or answered with a 500 after the change was made — and commands that may
not or cannot run change nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from contract_checks import assert_none_refused
from credential_leases import FixedAuth, sandbox_lease
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState
from syntaskio_common.commands import (
    CommandOutcome,
    CommandStatus,
    NoteInput,
    TaskCommand,
    TimeEntryInput,
)
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.events import KafkaRecord, decode_event
from syntaskio_common.integrations import ConnectionScope
from syntaskio_common.leases import Leases
from syntaskio_common.mappings import TeamMember
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.assignment import Entity
from syntaskio_connector.budget import ApiBudget
from syntaskio_connector.engine import Changed, IntegrationSync
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.sync import integration_ref
from syntaskio_connector.tracking import SyncTracking
from syntaskio_connector.writeback import CommandExecutor, CommandJournal

BASE = "http://sandbox.test"
MEMBER = "atech"


class Lost(Exception):
    """The connector died after ConnectWise made the change, before it heard back."""


class Interrupting(httpx.AsyncBaseTransport):
    """Forwards every request; for requests matching `after`, the answer is then lost
    (`Lost`: the process 'dies') or replaced by a 500."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.after: tuple[str, str] | None = None  # (method, path suffix)
        self.then: str = "die"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if self.after and (request.method, True) == (
            self.after[0],
            request.url.path.endswith(self.after[1]),
        ):
            self.after = None
            if self.then == "die":
                raise Lost("connector died")
            return httpx.Response(500, json={"code": "", "message": "An error occurred"})
        return response


class Recorded:
    def __init__(self) -> None:
        self.outcomes: list[CommandOutcome] = []
        self.refreshes: list[tuple[str, Changed]] = []
        self.raw: list[KafkaRecord] = []

    async def outcome(self, outcome: CommandOutcome) -> None:
        self.outcomes.append(outcome)

    async def refresh(self, integration_id: str, changed: Changed) -> None:
        self.refreshes.append((integration_id, changed))

    async def publish(self, records: list[KafkaRecord]) -> None:
        self.raw += records


@pytest.fixture
def sandbox_app() -> FastAPI:
    return create_app(Settings(tickets=120, seed=7, client_ids=DEV_CLIENT_ID))


@pytest.fixture
def state(sandbox_app: FastAPI) -> Iterator[SandboxState]:
    """The sandbox's state; afterwards, no request it answered broke the contract."""
    found: SandboxState = sandbox_app.state.sandbox
    yield found
    assert_none_refused(found.stats.snapshot())


@pytest.fixture
def transport(sandbox_app: FastAPI) -> Interrupting:
    return Interrupting(httpx.ASGITransport(app=sandbox_app))


@pytest.fixture
async def http(transport: Interrupting) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def db(mongo: AsyncMongoClient[Document], settings: ServiceSettings) -> AsyncDatabase[Document]:
    return mongo[settings.mongodb_database]


@pytest.fixture
def lease(state: SandboxState) -> CredentialLease:
    return sandbox_lease(state, MEMBER, BASE)


@pytest.fixture
def recorded() -> Recorded:
    return Recorded()


@pytest.fixture
async def executor(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    lease: CredentialLease,
    recorded: Recorded,
) -> CommandExecutor:
    access = ConnectWiseAccess(FixedAuth(lease), http, ApiBudget(db))
    tracking, metadata = SyncTracking(db), MetadataCache(db, timedelta(hours=1))
    journal = CommandJournal(db)
    await journal.create_indexes()
    # The user's tasks, as a sync leaves them tracked (commands only touch those).
    await IntegrationSync(tracking, metadata, recorded).run(
        access.client(lease), integration_ref(lease)
    )
    return CommandExecutor(
        access, tracking, metadata, journal, Leases(db), recorded.outcome, recorded.refresh
    )


def my_open_ticket(state: SandboxState, recorded: Recorded, index: int = 0) -> dict[str, Any]:
    """One of the member's open service tickets the sync published."""
    published = sorted(
        int(r.key.decode().rsplit("/", 1)[1])
        for r in recorded.raw
        if r.key and "/service_ticket/" in r.key.decode()
    )
    ticket = state.store.ticket(published[index])
    assert ticket is not None
    return ticket


def command(lease: CredentialLease, ticket_id: int, action: str, **fields: Any) -> TaskCommand:
    return TaskCommand.model_validate(
        {
            "command_id": str(uuid.uuid4()),
            "tenant_id": lease.tenant_id,
            "user_id": lease.user_id,
            "integration_id": lease.integration_id,
            "source_type": "service_ticket",
            "external_id": str(ticket_id),
            "action": action,
            "requested_at": datetime.now(UTC),
            **fields,
        }
    )


def notes_of(state: SandboxState, ticket_id: int) -> list[dict[str, Any]]:
    """Notes added through the API (not the ticket's initial description)."""
    return [n for n in state.store.notes(ticket_id) or [] if n["id"] != ticket_id]


def travel(state: SandboxState) -> int:
    """The id of the sandbox's "Travel" work type."""
    return int(next(w["id"] for w in state.store.work_types if w["name"] == "Travel"))


def time_entries_of(state: SandboxState, ticket_id: int) -> list[dict[str, Any]]:
    return [e for e in state.store.time_entries() if e["chargeToId"] == ticket_id]


def status_of(state: SandboxState, ticket_id: int) -> dict[str, Any]:
    ticket = state.store.ticket(ticket_id)
    assert ticket is not None
    status: dict[str, Any] = next(
        s for s in state.store.statuses if s["id"] == ticket["status"]["id"]
    )
    return status


async def test_complete_moves_the_ticket_to_its_boards_closed_status_once(
    executor: CommandExecutor, state: SandboxState, recorded: Recorded, lease: CredentialLease
) -> None:
    ticket = my_open_ticket(state, recorded)
    complete = command(lease, ticket["id"], "complete")
    outcome = await executor.execute(complete)
    assert outcome.status is CommandStatus.SUCCEEDED, outcome.error
    assert status_of(state, ticket["id"])["closedStatus"] is True
    assert outcome.ticket_status is not None
    assert outcome.ticket_status["id"] == status_of(state, ticket["id"])["id"]
    assert recorded.refreshes == [
        (lease.integration_id, Changed(tickets={Entity.SERVICE_TICKET: frozenset({ticket["id"]})}))
    ]
    # Redelivered: the journal answers, ConnectWise is not asked to change anything.
    updated = state.store.ticket(ticket["id"])
    again = await executor.execute(complete)
    assert again == outcome
    assert state.store.ticket(ticket["id"]) == updated
    assert [o.command_id for o in recorded.outcomes] == [complete.command_id] * 2


async def test_log_change_adds_a_note_and_time_then_closes_and_redelivery_adds_nothing(
    executor: CommandExecutor, state: SandboxState, recorded: Recorded, lease: CredentialLease
) -> None:
    ticket = my_open_ticket(state, recorded, 1)
    hours_before = ticket["actualHours"]
    log = command(
        lease,
        ticket["id"],
        "log_change",
        note={"text": "Replaced the PSU; all green.", "resolution": True},
        time_entry={
            "hours": 1.25,
            "notes": "On site",
            "work_type_id": travel(state),
            "billable_option": "DoNotBill",
        },
        close=True,
    )
    outcome = await executor.execute(log)
    assert outcome.status is CommandStatus.SUCCEEDED, outcome.error
    [note] = notes_of(state, ticket["id"])
    assert (note["id"], note["text"], note["resolutionFlag"]) == (
        outcome.note_id,
        "Replaced the PSU; all green.",
        True,
    )
    assert note["detailDescriptionFlag"] is True
    assert note["internalAnalysisFlag"] is False
    [entry] = time_entries_of(state, ticket["id"])
    assert entry["id"] == outcome.time_entry_id
    assert entry["member"]["identifier"] == MEMBER
    assert entry["workType"]["id"] == travel(state)
    assert entry["billableOption"] == "DoNotBill"
    after = state.store.ticket(ticket["id"])
    assert after is not None
    assert after["actualHours"] == pytest.approx(hours_before + 1.25)
    assert status_of(state, ticket["id"])["closedStatus"] is True

    await executor.execute(log)
    assert len(notes_of(state, ticket["id"])) == 1
    assert len(time_entries_of(state, ticket["id"])) == 1


@pytest.mark.parametrize("then", ["die", "500"])
async def test_a_change_whose_answer_was_lost_is_not_made_twice(
    executor: CommandExecutor,
    state: SandboxState,
    recorded: Recorded,
    lease: CredentialLease,
    transport: Interrupting,
    then: str,
) -> None:
    ticket = my_open_ticket(state, recorded, 2)
    add = command(
        lease,
        ticket["id"],
        "log_change",
        note={"text": "Waiting on the vendor.", "internal": True},
        time_entry={"hours": 0.5},
    )
    transport.after, transport.then = ("POST", "/notes"), then
    if then == "die":
        with pytest.raises(Lost):
            await executor.execute(add)
        assert len(notes_of(state, ticket["id"])) == 1  # made, but never recorded
        outcome = await executor.execute(add)  # the redelivery after a restart
    else:
        outcome = await executor.execute(add)  # the 500 hid a success
    assert outcome.status is CommandStatus.SUCCEEDED, outcome.error
    [note] = notes_of(state, ticket["id"])
    assert note["id"] == outcome.note_id
    assert note["internalAnalysisFlag"] is True
    assert len(time_entries_of(state, ticket["id"])) == 1

    # Cut off after the time entry this time.
    again = command(lease, ticket["id"], "add_time_entry", time_entry={"hours": 2})
    transport.after, transport.then = ("POST", "/time/entries"), "die"
    with pytest.raises(Lost):
        await executor.execute(again)
    assert (await executor.execute(again)).status is CommandStatus.SUCCEEDED
    assert len(time_entries_of(state, ticket["id"])) == 2


async def test_commands_that_may_not_or_cannot_run_change_nothing(
    executor: CommandExecutor, state: SandboxState, recorded: Recorded, lease: CredentialLease
) -> None:
    mine = my_open_ticket(state, recorded)
    published = {r.key.decode() for r in recorded.raw if r.key}
    others = next(
        t
        for t in state.store.tickets()
        if not t["closedFlag"]
        and f"{lease.integration_id}/service_ticket/{t['id']}" not in published
    )
    before = {t["id"]: dict(t) for t in (mine, others)}
    other_board = next(s for s in state.store.statuses if s["board"]["id"] != mine["board"]["id"])
    refused = [
        # Not on the user's dashboard, and the connection cannot act as their member.
        command(lease, others["id"], "complete"),
        # Someone else's connection.
        command(lease, mine["id"], "complete").model_copy(update={"user_id": "mallory"}),
        command(lease, mine["id"], "complete").model_copy(update={"tenant_id": "evil"}),
        command(lease, mine["id"], "complete").model_copy(update={"integration_id": "int-nope"}),
        # A status of another board.
        command(lease, mine["id"], "update_status", status_id=other_board["id"]),
    ]
    for bad in refused:
        outcome = await executor.execute(bad)
        assert outcome.status is CommandStatus.REJECTED, bad
        assert outcome.error
    assert {t: state.store.ticket(t) for t in before} == before
    assert notes_of(state, mine["id"]) == []
    assert recorded.refreshes == []


async def test_a_reused_command_id_does_not_run_a_different_command(
    executor: CommandExecutor, state: SandboxState, recorded: Recorded, lease: CredentialLease
) -> None:
    first, second = my_open_ticket(state, recorded), my_open_ticket(state, recorded, 1)
    note = {"text": "First"}
    done = await executor.execute(command(lease, first["id"], "add_note", note=note))
    assert done.status is CommandStatus.SUCCEEDED
    reused = command(lease, second["id"], "complete").model_copy(
        update={"command_id": done.command_id}
    )
    outcome = await executor.execute(reused)
    assert outcome == done  # the first command's outcome; the second never ran
    assert status_of(state, second["id"])["closedStatus"] is False


async def test_a_tenant_connection_writes_as_its_api_member_for_the_mapped_technician(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    state: SandboxState,
    recorded: Recorded,
    lease: CredentialLease,
) -> None:
    """The company's API member acts for its mapped technicians: time is logged as the
    technician's member, and only on tickets synced for that technician."""
    key = next(k for k in state.store.api_keys if k.member_identifier == "syntaskio-api")
    company = lease.model_copy(
        update={
            "user_id": "",
            "member_identifier": "syntaskio-api",
            "public_key": key.public_key,
            "private_key": key.private_key,
            "scope": ConnectionScope.TENANT,
            "members": [
                TeamMember(identifier="atech", user_id="alex"),
                TeamMember(identifier="bjones", user_id="bea"),
            ],
        }
    )
    access = ConnectWiseAccess(FixedAuth(company), http, ApiBudget(db))
    tracking, metadata = SyncTracking(db), MetadataCache(db, timedelta(hours=1))
    journal = CommandJournal(db)
    await journal.create_indexes()
    await IntegrationSync(tracking, metadata, recorded).run(
        access.client(company), integration_ref(company)
    )
    executor = CommandExecutor(
        access, tracking, metadata, journal, Leases(db), recorded.outcome, recorded.refresh
    )
    synced: dict[str, set[int]] = {}
    for record in recorded.raw:
        event = decode_event(record.headers, record.value)
        if event.data.get("entity") == "service_ticket":
            synced.setdefault(event.data["user_id"], set()).add(int(event.data["external_id"]))
    beas = min(synced["bea"] - synced["alex"])
    alexs = min(synced["alex"] - synced["bea"])

    def as_user(user: str, ticket_id: int) -> TaskCommand:
        acting = company.model_copy(update={"user_id": user})
        return command(acting, ticket_id, "add_time_entry", time_entry={"hours": 1})

    logged = await executor.execute(as_user("bea", beas))
    assert logged.status is CommandStatus.SUCCEEDED, logged.error
    (entry,) = time_entries_of(state, beas)
    assert entry["member"]["identifier"] == "bjones"  # hers, not the API member's
    # Not hers (and the connection may not act as her member), nobody's, or another
    # company's: refused before ConnectWise is asked.
    for refused in (
        as_user("bea", alexs),
        as_user("mallory", beas),
        as_user("bea", beas).model_copy(update={"tenant_id": "other-tenant"}),
    ):
        outcome = await executor.execute(refused)
        assert outcome.status is CommandStatus.REJECTED, refused
    assert time_entries_of(state, alexs) == []
    assert len(time_entries_of(state, beas)) == 1

    # Once the connection can act as her member (keys minted for bjones, as auth-service
    # mints them), a ticket that is not hers is changed by those keys: ConnectWise sees
    # bjones, and allows what bjones may do.
    bjones = state.store.member_by_identifier("bjones")
    assert bjones is not None
    minted = state.member_tokens.mint(bjones["id"])
    as_bea = company.model_copy(
        update={
            "user_id": "bea",
            "member_identifier": "bjones",
            "public_key": minted.public_key,
            "private_key": minted.private_key,
            "scope": ConnectionScope.PERSONAL,
            "members": [],
        }
    )
    acting = CommandExecutor(
        ConnectWiseAccess(FixedAuth(company, {"bea": as_bea}), http, ApiBudget(db)),
        tracking,
        metadata,
        journal,
        Leases(db),
        recorded.outcome,
        recorded.refresh,
    )
    found = command(
        company.model_copy(update={"user_id": "bea"}),
        alexs,
        "log_change",
        note=NoteInput(text="Seen on site").model_dump(),
        time_entry=TimeEntryInput(hours=0.5).model_dump(),
    )
    done = await acting.execute(found)
    assert done.status is CommandStatus.SUCCEEDED, done.error
    (note,) = notes_of(state, alexs)
    assert note["createdBy"] == "bjones"  # made with her keys, not the API member's
    (entry,) = time_entries_of(state, alexs)
    assert entry["member"]["identifier"] == "bjones"


async def test_a_logged_change_moves_the_ticket_to_the_named_status_where_its_board_has_it(
    executor: CommandExecutor, state: SandboxState, recorded: Recorded, lease: CredentialLease
) -> None:
    """The company's "log a change moves the ticket to …" status is asked for by name:
    boards have statuses of their own, so each ticket moves to its board's status of
    that name, and one whose board has none keeps its status."""
    ticket = my_open_ticket(state, recorded, 2)
    board = ticket["board"]["id"]
    current = ticket["status"]["id"]
    target = next(
        s
        for s in state.store.statuses
        if s["board"]["id"] == board
        and not s.get("closedStatus")
        and not s.get("inactive")
        and s["id"] != current
    )
    named = command(
        lease,
        ticket["id"],
        "log_change",
        note={"text": "Waiting for the customer's reply."},
        status_name=f"  {target['name'].upper()} ",
    )
    outcome = await executor.execute(named)
    assert outcome.status is CommandStatus.SUCCEEDED, outcome.error
    assert status_of(state, ticket["id"])["id"] == target["id"]
    assert outcome.ticket_status == {"id": target["id"], "name": target["name"]}

    elsewhere = command(
        lease,
        ticket["id"],
        "log_change",
        time_entry={"hours": 0.5},
        status_name="No board has this status",
    )
    outcome = await executor.execute(elsewhere)
    assert outcome.status is CommandStatus.SUCCEEDED, outcome.error
    assert outcome.ticket_status is None
    assert status_of(state, ticket["id"])["id"] == target["id"]
    assert len(time_entries_of(state, ticket["id"])) == 1
