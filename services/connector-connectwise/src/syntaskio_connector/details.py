"""A ticket's detail, read from ConnectWise when a technician opens it and cached per
ticket (`ticket_details`).

One cold read is one round-trip set, made at once and within the connection's budget:
the ticket, its notes, its time entries and the ticket's schedule entries (4 requests),
plus the board's statuses and the work types when the metadata cache has none (shared
with syncs and write-backs).
None is made while less than `budget.SYNC_RESERVE` of the hour's budget is left.
A cached detail is served while it is younger than `max_age`, no older than what the
dashboard knows of the ticket (`known_updated_at`: the task's `source_updated_at`), and
not dropped because a webhook or a write-back named the ticket since (`forget`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.connectwise import NotFound
from syntaskio_common.connectwise_conditions import F
from syntaskio_common.connectwise_links import contact_url, ticket_url
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.mongo import Document
from syntaskio_common.task import SourceType, parse_timestamp
from syntaskio_common.ticket_detail import (
    DetailContact,
    DetailNote,
    DetailScheduleEntry,
    DetailTimeEntry,
    StatusChoice,
    TicketDetail,
    WorkTypeChoice,
)
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.assignment import PATHS, SCHEDULE_TYPE_TICKET, Entity, ref_id
from syntaskio_connector.engine import Changed
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.sync import integration_ref
from syntaskio_connector.writeback import CHARGE_TO_TYPES

DETAIL_ENTITIES: Final = (Entity.SERVICE_TICKET, Entity.PROJECT_TICKET)
# Housekeeping only: an entry older than `max_age` is read again either way.
_KEEP_UNUSED: Final = timedelta(days=1)
READ_COST: Final = 6  # requests, at most: 4, and the statuses and work types uncached


class NoConnection(Exception):
    """The integration is not an active connection of the tenant (disconnected, expired,
    paused or turned off)."""


class TicketGone(Exception):
    """ConnectWise has no such ticket (any more)."""


class TicketDetails:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        access: ConnectWiseAccess,
        metadata: MetadataCache,
        *,
        max_age: timedelta,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._cache = db["ticket_details"]
        self._access = access
        self._metadata = metadata
        self._max_age = max_age
        self._clock = clock
        # One read per ticket at a time in this process: a second tab waits for the
        # first one's answer instead of spending the budget again.
        self._reading: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def create_indexes(self) -> None:
        await self._cache.create_index(
            "fetched_at", expireAfterSeconds=int(_KEEP_UNUSED.total_seconds()), name="expiry"
        )
        await self._cache.create_index("integration_id", name="by_integration")
        await self._cache.create_index("ticket", name="by_ticket")

    async def get(
        self,
        tenant_id: str,
        integration_id: str,
        entity: Entity,
        ticket_id: int,
        known_updated_at: datetime | None = None,
        *,
        acting_for: str | None = None,
    ) -> TicketDetail:
        """The ticket's detail, from the cache when fresh enough, else from ConnectWise.
        `acting_for`: a user for whom the ticket is not synced (they found it): read with
        credentials acting as their member, and cached for them alone. Raises
        NoConnection, CannotAct, TicketGone, SyncDeferred (the budget is spent or
        ConnectWise paused us) or a ConnectWise/HTTP error."""
        ticket = _key(integration_id, entity, ticket_id)
        key = ticket if acting_for is None else f"{ticket}/for/{acting_for}"
        cached = await self._fresh(key, tenant_id, known_updated_at)
        if cached is not None:
            return cached
        lock = self._reading.setdefault(key, asyncio.Lock())
        async with lock:
            cached = await self._fresh(key, tenant_id, known_updated_at)
            if cached is not None:
                return cached
            detail = await self._read(tenant_id, integration_id, entity, ticket_id, acting_for)
            await self._cache.replace_one(
                {"_id": key},
                {
                    "ticket": ticket,
                    "tenant_id": tenant_id,
                    "integration_id": integration_id,
                    "detail": detail.model_dump(mode="json"),
                    "updated_at": detail.updated_at,
                    "fetched_at": detail.fetched_at,
                },
                upsert=True,
            )
            return detail

    async def forget(self, integration_id: str, changed: Changed) -> None:
        """Drop the cached details of the tickets a webhook or a write-back named."""
        keys = [
            _key(integration_id, entity, ticket_id)
            for entity in DETAIL_ENTITIES
            for ticket_id in changed.tickets.get(entity, ())
        ]
        if keys:
            await self._cache.delete_many({"ticket": {"$in": keys}})

    async def _fresh(
        self, key: str, tenant_id: str, known_updated_at: datetime | None
    ) -> TicketDetail | None:
        doc = await self._cache.find_one({"_id": key, "tenant_id": tenant_id})
        if doc is None or doc["fetched_at"] <= self._clock() - self._max_age:
            return None
        updated = doc.get("updated_at")
        if known_updated_at is not None and (updated is None or updated < known_updated_at):
            return None  # the dashboard has seen a newer version of the ticket
        return TicketDetail.model_validate(doc["detail"])

    async def _lease(
        self, tenant_id: str, integration_id: str, acting_for: str | None
    ) -> CredentialLease:
        if acting_for is None:
            lease = await self._access.lease(integration_id, purpose="detail")
        else:
            try:
                lease = await self._access.acting(tenant_id, acting_for, "detail")
            except LookupError:
                lease = None
        if lease is None or lease.tenant_id != tenant_id or lease.integration_id != integration_id:
            raise NoConnection(integration_id)
        return lease

    async def _read(
        self,
        tenant_id: str,
        integration_id: str,
        entity: Entity,
        ticket_id: int,
        acting_for: str | None,
    ) -> TicketDetail:
        await self._access.budget.keep_sync_reserve(integration_id, READ_COST)
        lease = await self._lease(tenant_id, integration_id, acting_for)
        client = self._access.client(lease)
        path = f"{PATHS[entity]}/{ticket_id}"
        on_ticket = (F("chargeToType") == CHARGE_TO_TYPES[entity]) & (F("chargeToId") == ticket_id)
        scheduled = (F("objectId") == ticket_id) & (F("type/identifier") == SCHEDULE_TYPE_TICKET)
        # Gathered, never cancelled: a sibling's failure must not cut a request off in
        # the middle of its budget bookkeeping (a database call).
        ref = integration_ref(lease)
        answers = await asyncio.gather(
            client.get(path),
            _every(client.pages(f"{path}/notes")),
            _every(client.pages("time/entries", conditions=on_ticket)),
            _every(client.pages("schedule/entries", conditions=scheduled)),
            self._metadata.work_types(client, ref),
            return_exceptions=True,
        )
        for answer in answers:
            if isinstance(answer, NotFound):
                raise TicketGone(f"{entity.value} {ticket_id}") from answer
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
        ticket, notes, time_entries, schedule, work_types = answers
        assert isinstance(ticket, dict)
        board_id = ref_id(ticket.get("board"))
        statuses: dict[int, dict[str, Any]] = {}
        if board_id is not None:
            boards = await self._metadata.board_statuses(client, ref, [board_id])
            statuses = boards.get(board_id, {})
        return assemble(
            entity,
            ticket,
            notes=notes,
            time_entries=time_entries,
            schedule_entries=schedule,
            statuses=statuses,
            work_types=work_types,
            lease=lease,
            fetched_at=self._clock(),
        )


def assemble(
    entity: Entity,
    ticket: Mapping[str, Any],
    *,
    notes: Iterable[Mapping[str, Any]],
    time_entries: Iterable[Mapping[str, Any]],
    schedule_entries: Iterable[Mapping[str, Any]],
    statuses: Mapping[int, Mapping[str, Any]],
    work_types: Mapping[int, Mapping[str, Any]],
    lease: CredentialLease,
    fetched_at: datetime,
) -> TicketDetail:
    """ConnectWise's records → the detail. The description is the ticket's first note
    when it is a discussion note (ConnectWise keeps `initialDescription` as that note and
    never returns it on the ticket itself); every other note follows, oldest first."""
    ticket_id = int(ticket["id"])
    ordered = sorted(
        (n for n in notes if isinstance(n.get("id"), int)),
        key=lambda n: (parse_timestamp(n.get("dateCreated")) or fetched_at, n["id"]),
    )
    description = None
    if ordered and ordered[0].get("detailDescriptionFlag"):
        description = text_of(ordered.pop(0).get("text"))
    status_id = ref_id(ticket.get("status"))
    status_record = statuses.get(status_id) if status_id is not None else None
    info = _mapping(ticket.get("_info"))
    company = ticket.get("company")
    return TicketDetail(
        source_type=SourceType(entity.value),
        ticket_id=ticket_id,
        summary=text_of(ticket.get("summary")) or f"Ticket #{ticket_id}",
        description=description,
        company=name_of(company),
        site=name_of(ticket.get("site")) or text_of(ticket.get("siteName")),
        board=name_of(ticket.get("board")),
        status=StatusChoice(
            id=status_id,
            name=name_of(ticket.get("status")) or str(status_id),
            closed=bool(
                status_record.get("closedStatus") if status_record else ticket.get("closedFlag")
            ),
        )
        if status_id is not None
        else None,
        priority=name_of(ticket.get("priority")),
        type=name_of(ticket.get("type")),
        sub_type=name_of(ticket.get("subType")),
        item=name_of(ticket.get("item")),
        owner=name_of(ticket.get("owner")),
        resources=[r.strip() for r in str(ticket.get("resources") or "").split(",") if r.strip()],
        project=name_of(ticket.get("project")),
        phase=name_of(ticket.get("phase")),
        required_date=parse_timestamp(ticket.get("requiredDate")),
        budget_hours=_number(ticket.get("budgetHours")),
        actual_hours=_number(ticket.get("actualHours")),
        contact=_contact(ticket, lease),
        notes=[_note(n) for n in ordered],
        time_entries=sorted(
            (_time_entry(e) for e in time_entries if isinstance(e.get("id"), int)),
            key=lambda e: (e.started_at or fetched_at, e.id),
        ),
        schedule_entries=sorted(
            (_schedule_entry(e) for e in schedule_entries if isinstance(e.get("id"), int)),
            key=lambda e: (e.starts_at or fetched_at, e.id),
        ),
        statuses=[
            StatusChoice(
                id=s_id, name=str(s.get("name") or s_id), closed=bool(s.get("closedStatus"))
            )
            for s_id, s in sorted(statuses.items(), key=lambda i: (i[1].get("sortOrder", 0), i[0]))
            if not s.get("inactive")
        ],
        work_types=_work_types(work_types, ref_id(ticket.get("workType"))),
        updated_at=parse_timestamp(info.get("lastUpdated")),
        fetched_at=fetched_at,
        url=ticket_url(lease.api_base_url, lease.company_id, str(ticket_id)),
    )


def _work_types(
    work_types: Mapping[int, Mapping[str, Any]], ticket_default: int | None
) -> list[WorkTypeChoice]:
    """The active work types by name, the default first: the ticket's own work type if
    it has an active one, else the company's overall default."""
    active = {i: w for i, w in work_types.items() if not w.get("inactiveFlag")}
    default = ticket_default if ticket_default in active else None
    if default is None:
        default = next((i for i, w in active.items() if w.get("overallDefaultFlag")), None)
    choices = [
        WorkTypeChoice(
            id=i,
            name=str(w.get("name") or i),
            billable_option=text_of(w.get("billTime")),
            default=i == default,
        )
        for i, w in active.items()
    ]
    return sorted(choices, key=lambda c: (not c.default, c.name.casefold(), c.id))


def _contact(ticket: Mapping[str, Any], lease: CredentialLease) -> DetailContact | None:
    contact_id = ref_id(ticket.get("contact"))
    name = name_of(ticket.get("contact")) or text_of(ticket.get("contactName"))
    phone = text_of(ticket.get("contactPhoneNumber"))
    email = text_of(ticket.get("contactEmailAddress"))
    if contact_id is None and not (name or phone or email):
        return None
    return DetailContact(
        id=contact_id,
        name=name,
        phone=phone,
        email=email,
        url=contact_url(lease.api_base_url, lease.company_id, str(contact_id))
        if contact_id is not None
        else None,
    )


def _note(note: Mapping[str, Any]) -> DetailNote:
    return DetailNote(
        id=int(note["id"]),
        text=text_of(note.get("text")) or "",
        created_at=parse_timestamp(note.get("dateCreated")),
        author=name_of(note.get("member"))
        or name_of(note.get("contact"))
        or text_of(note.get("createdBy")),
        discussion=bool(note.get("detailDescriptionFlag")),
        internal=bool(note.get("internalAnalysisFlag")),
        resolution=bool(note.get("resolutionFlag")),
    )


def _time_entry(entry: Mapping[str, Any]) -> DetailTimeEntry:
    return DetailTimeEntry(
        id=int(entry["id"]),
        member=name_of(entry.get("member")),
        started_at=parse_timestamp(entry.get("timeStart")),
        ended_at=parse_timestamp(entry.get("timeEnd")),
        hours=_number(entry.get("actualHours")),
        notes=text_of(entry.get("notes")),
        billable_option=text_of(entry.get("billableOption")),
        work_type=name_of(entry.get("workType")),
    )


def _schedule_entry(entry: Mapping[str, Any]) -> DetailScheduleEntry:
    member = _mapping(entry.get("member"))
    return DetailScheduleEntry(
        id=int(entry["id"]),
        member=text_of(member.get("identifier")),
        member_name=text_of(member.get("name")),
        starts_at=parse_timestamp(entry.get("dateStart")),
        ends_at=parse_timestamp(entry.get("dateEnd")),
        hours=_number(entry.get("hours")),
        done=bool(entry.get("doneFlag")),
    )


async def _every(pages: AsyncIterator[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    async for page in pages:
        rows.extend(page)
    return rows


def _key(integration_id: str, entity: Entity, ticket_id: int) -> str:
    return f"{integration_id}/{entity.value}/{ticket_id}"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def text_of(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def name_of(value: Any) -> str | None:
    if not isinstance(value, Mapping):
        return None
    return text_of(value.get("name")) or text_of(value.get("identifier"))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
