"""Deterministic seeded data: the same (seed, ticket count, anchor) gives byte-identical
records. Tickets are drawn one after another from one random stream, so a larger ticket
count extends a smaller one instead of reshuffling it.

Guarantees tests and demos rely on: member ``atech`` owns every tenth ticket and those
are open (>= 30 open tickets at the default 300); ``bjones`` likewise owns the tickets
five after them. The API member ``syntaskio-api`` (licence class ``A``) comes last and
has no tickets.

Projects, project tickets (`project_seed.py`) and schedule entries (`schedule_seed.py`)
come from streams of their own derived from the same seed, so the service tickets are
the same with or without them. Ask `assignments(dataset, identifier)` what a member
holds rather than hard-coding counts.
"""

from __future__ import annotations

import random
import string
from bisect import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import accumulate
from types import MappingProxyType
from typing import Final, TypeVar

from connectwise_sandbox.project_seed import generate_projects
from connectwise_sandbox.records import (
    RECORD_TYPE_SERVICE,
    JsonObject,
    TimestampFormatter,
    board_ref,
    company_ref,
    contact_ref,
    format_timestamp,
    member_ref,
    priority_ref,
    status_ref,
    ticket_record,
)
from connectwise_sandbox.schedule_seed import generate_schedule, holds
from connectwise_sandbox.sla_seed import with_slas
from connectwise_sandbox.vocabulary import (
    API_MEMBER,
    BOARDS,
    COMPANIES,
    CONTACT_FIRST_NAMES,
    CONTACT_LAST_NAMES,
    DETAILS,
    MEMBERS,
    PRIORITIES,
    PROJECT_BOARDS,
    SEVERITIES,
    SOURCES,
    WORK_TYPES,
    MemberSpec,
)

FIRST_TICKET_ID: Final = 1001
FIRST_MEMBER_ID: Final = 101
FIRST_COMPANY_ID: Final = 250
FIRST_CONTACT_ID: Final = 3001
MSP_DOMAIN: Final = "msp.example"
HISTORY: Final = timedelta(days=180)
KEY_LENGTH: Final = 16
CLOSED_SHARE: Final = 0.25  # of the tickets not guaranteed open: ~20% closed overall
GUARANTEE_EVERY: Final = 10
API_LICENSE_CLASS: Final = "A"
_KEY_ALPHABET: Final = string.ascii_letters + string.digits
_SECURITY_ROLES: Final = {
    "F": {"id": 2, "name": "Technician"},
    API_LICENSE_CLASS: {"id": 3, "name": "API Member"},
}
_DAY: Final = 86_400
_T = TypeVar("_T")


@dataclass(frozen=True)
class ApiKey:
    """A member's API key pair; `{company}+{public}:{private}` is the Basic credential."""

    member_id: int
    member_identifier: str
    public_key: str
    private_key: str = field(repr=False)


@dataclass(frozen=True)
class Dataset:
    members: tuple[JsonObject, ...]
    api_keys: tuple[ApiKey, ...]
    companies: tuple[JsonObject, ...]
    contacts: tuple[JsonObject, ...]
    boards: tuple[JsonObject, ...]
    statuses: tuple[JsonObject, ...]
    priorities: tuple[JsonObject, ...]
    work_types: tuple[JsonObject, ...]
    tickets: tuple[JsonObject, ...]
    # The initial description is write-only on a real ticket; it is read back as a note.
    descriptions: Mapping[int, str]
    project_statuses: tuple[JsonObject, ...]
    projects: tuple[JsonObject, ...]
    phases: tuple[JsonObject, ...]
    team_members: tuple[JsonObject, ...]
    project_tickets: tuple[JsonObject, ...]
    project_descriptions: Mapping[int, str]
    schedule_entries: tuple[JsonObject, ...]
    phase_statuses: tuple[JsonObject, ...] = ()


def generate(*, seed: int, tickets: int, anchor: datetime, extra_technicians: int = 0) -> Dataset:
    created = format_timestamp(anchor - HISTORY - timedelta(days=400))
    members = _members(created, extra_technicians)
    companies = _companies(created)
    boards, statuses = _boards(created)
    priorities = _priorities(created)
    # API members do no ticket work: tickets draw only from the technicians, so adding
    # one does not reshuffle a seed's tickets.
    staff = tuple(m for m in members if m["licenseClass"] != API_LICENSE_CLASS)
    service_boards, project_boards = boards[: len(BOARDS)], boards[len(BOARDS) :]
    ticket_records, descriptions, contacts = _tickets(
        random.Random(seed), tickets, anchor, staff, companies, service_boards, statuses, priorities
    )
    ticket_records = with_slas(seed, ticket_records, anchor)
    projects = generate_projects(
        seed=seed,
        service_tickets=tickets,
        anchor=anchor,
        created=created,
        members=staff,
        companies=companies,
        boards=project_boards,
        statuses=statuses,
        priorities=priorities,
    )
    schedule = generate_schedule(
        seed=seed,
        anchor=anchor,
        tickets=ticket_records,
        project_tickets=projects.tickets,
        members=staff,
    )
    return Dataset(
        members=members,
        api_keys=_api_keys(seed, members),
        companies=companies,
        contacts=contacts,
        boards=boards,
        statuses=statuses,
        priorities=priorities,
        work_types=_work_types(created),
        tickets=ticket_records,
        descriptions=MappingProxyType(descriptions),
        project_statuses=projects.statuses,
        phase_statuses=projects.phase_statuses,
        projects=projects.projects,
        phases=projects.phases,
        team_members=projects.team_members,
        project_tickets=projects.tickets,
        project_descriptions=MappingProxyType(projects.descriptions),
        schedule_entries=schedule,
    )


def _info(created: str) -> JsonObject:
    return {"lastUpdated": created, "updatedBy": "admin1"}


def _extra_technicians(count: int) -> tuple[MemberSpec, ...]:
    """`tech001`, `tech002`, …: seeded after the API member, so no named member's id or
    keys move."""
    return tuple(
        MemberSpec(f"tech{n:03d}", "Tech", f"Number{n:03d}", "Service Technician")
        for n in range(1, count + 1)
    )


def _members(created: str, extra_technicians: int = 0) -> tuple[JsonObject, ...]:
    """`Member` records with the fields the model requires (`defaultEmail`,
    `defaultPhone`, `hireDate`, `securityRole`, names, `licenseClass`) and a few more."""
    specs = (*MEMBERS, API_MEMBER, *_extra_technicians(extra_technicians))
    return tuple(member_record(index, spec, created) for index, spec in enumerate(specs))


def member_record(
    index: int, spec: MemberSpec, created: str, domain: str = MSP_DOMAIN
) -> JsonObject:
    """The `index`th member (id `FIRST_MEMBER_ID + index`), e-mail at `domain`."""
    return {
        "id": FIRST_MEMBER_ID + index,
        "identifier": spec.identifier,
        "firstName": spec.first_name,
        "lastName": spec.last_name,
        "title": spec.title,
        "officeEmail": f"{spec.first_name.lower()}.{spec.last_name.lower()}@{domain}",
        "officePhone": f"555-{100 + index:04d}",
        "defaultEmail": "Office",
        "defaultPhone": "Office",
        "hireDate": created,
        "inactiveFlag": spec.inactive,
        "licenseClass": spec.license_class,
        "securityRole": _SECURITY_ROLES[spec.license_class],
        "timeZone": {"id": 1, "name": "US Eastern"},
        "_info": _info(created),
    }


def _api_keys(seed: int, members: Sequence[JsonObject]) -> tuple[ApiKey, ...]:
    rng = random.Random(f"api-keys:{seed}")

    def key() -> str:
        return "".join(rng.choice(_KEY_ALPHABET) for _ in range(KEY_LENGTH))

    return tuple(
        ApiKey(member["id"], member["identifier"], public_key=key(), private_key=key())
        for member in members
    )


def _companies(created: str) -> tuple[JsonObject, ...]:
    return tuple(
        {
            "id": FIRST_COMPANY_ID + index,
            "identifier": spec.identifier,
            "name": spec.name,
            "status": {"id": 1, "name": "Active"},
            "types": [{"id": 1, "name": "Client"}],
            "city": spec.city,
            "state": spec.state,
            "phoneNumber": f"555{index:07d}",
            "website": f"www.{spec.identifier.lower()}.example",
            "deletedFlag": False,
            "_info": _info(created),
        }
        for index, spec in enumerate(COMPANIES)
    )


def _boards(created: str) -> tuple[tuple[JsonObject, ...], tuple[JsonObject, ...]]:
    """Service boards, then project boards (`projectFlag`), each with its statuses."""
    boards: list[JsonObject] = []
    statuses: list[JsonObject] = []
    for board_index, spec in enumerate((*BOARDS, *PROJECT_BOARDS)):
        board: JsonObject = {
            "id": board_index + 1,
            "name": spec.name,
            "location": {"id": 1, "name": "Main"},
            "department": {"id": 1, "name": "Services"},
            "inactiveFlag": False,
            "projectFlag": board_index >= len(BOARDS),
            "_info": _info(created),
        }
        boards.append(board)
        for sort_order, status in enumerate(spec.statuses):
            statuses.append(
                {
                    "id": len(statuses) + 1,
                    "name": status.name,
                    "board": board_ref(board),
                    "sortOrder": sort_order,
                    "displayOnBoard": True,
                    "inactive": False,
                    "closedStatus": status.closed,
                    "timeEntryNotAllowed": status.closed,
                    "defaultFlag": sort_order == 0,
                    "customerPortalFlag": False,
                    "_info": _info(created),
                }
            )
    return tuple(boards), tuple(statuses)


def _priorities(created: str) -> tuple[JsonObject, ...]:
    return tuple(
        {
            "id": index + 1,
            "name": spec.name,
            "color": spec.color,
            "sortOrder": index + 1,
            "defaultFlag": spec.level == "Medium",
            "level": spec.level,
            "_info": _info(created),
        }
        for index, spec in enumerate(PRIORITIES)
    )


def _work_types(created: str) -> tuple[JsonObject, ...]:
    """`WorkType` records with the fields the model requires (`name`, `billTime`, `rate`,
    `rateType`) and the flags that say which to offer."""
    return tuple(
        {
            "id": index + 1,
            "name": spec.name,
            "billTime": spec.bill_time,
            "rate": 1.0,
            "rateType": "Multiplier",
            "overallDefaultFlag": spec.default,
            "inactiveFlag": spec.inactive,
            "utilizationFlag": spec.bill_time != "DoNotBill",
            "_info": _info(created),
        }
        for index, spec in enumerate(WORK_TYPES)
    )


@dataclass(frozen=True)
class _BoardPool:
    board: JsonObject
    open_statuses: tuple[JsonObject, ...]
    closed_statuses: tuple[JsonObject, ...]
    summaries: tuple[str, ...]


def _tickets(
    rng: random.Random,
    count: int,
    anchor: datetime,
    members: Sequence[JsonObject],
    companies: Sequence[JsonObject],
    boards: Sequence[JsonObject],
    statuses: Sequence[JsonObject],
    priorities: Sequence[JsonObject],
) -> tuple[tuple[JsonObject, ...], dict[int, str], tuple[JsonObject, ...]]:
    """The tickets, their descriptions, and the companies' contacts who raised them (a
    contact per company and name, met first on the ticket that names it; no random draw
    of its own, so the tickets of a seed are the same as before contacts existed)."""
    pools = [
        _BoardPool(
            board,
            tuple(s for s in statuses if s["board"]["id"] == board["id"] and not s["closedStatus"]),
            tuple(s for s in statuses if s["board"]["id"] == board["id"] and s["closedStatus"]),
            spec.summaries,
        )
        for board, spec in zip(boards, BOARDS, strict=True)
    ]
    board_weights = list(accumulate(spec.weight for spec in BOARDS))
    priority_weights = list(accumulate(spec.weight for spec in PRIORITIES))
    sources = [{"id": index + 1, "name": name} for index, name in enumerate(SOURCES)]
    active = [member for member in members if not member["inactiveFlag"]]
    inactive = [member for member in members if member["inactiveFlag"]]
    atech, bjones = members[0], members[1]
    anchor_ts = int(anchor.timestamp())
    # Reference shapes are built once and shared: records are never mutated in place.
    refs = {
        id(record): ref(record)
        for records, ref in (
            (members, member_ref),
            (companies, company_ref),
            (boards, board_ref),
            (statuses, status_ref),
            (priorities, priority_ref),
        )
        for record in records
    }
    history = int(HISTORY.total_seconds())
    random_ = rng.random
    stamp = TimestampFormatter()

    def choice(options: Sequence[_T]) -> _T:
        return options[int(random_() * len(options))]

    def randrange(start: int, stop: int | None = None) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(random_() * (stop - start))

    tickets: list[JsonObject] = []
    descriptions: dict[int, str] = {}
    contacts: dict[tuple[int, str, str], JsonObject] = {}
    for index in range(count):
        ticket_id = FIRST_TICKET_ID + index
        pool = pools[bisect(board_weights, random_() * board_weights[-1])]
        priority = priorities[bisect(priority_weights, random_() * priority_weights[-1])]
        company = choice(companies)
        guaranteed = {0: atech, 5: bjones}.get(index % GUARANTEE_EVERY)
        closed = guaranteed is None and random_() < CLOSED_SHARE
        status = choice(pool.closed_statuses if closed else pool.open_statuses)

        owner: JsonObject | None
        if guaranteed is not None:
            owner = guaranteed
        elif status["sortOrder"] == 0 and random_() < 0.7:
            owner = None  # a new ticket nobody has picked up yet
        elif closed and inactive and random_() < 0.1:
            owner = choice(inactive)  # history from a former employee
        else:
            owner = choice(active)
        resources = [owner["identifier"]] if owner is not None and random_() < 0.85 else []
        for _ in range(0 if random_() < 0.6 else 1 if random_() < 0.75 else 2):
            extra = choice(active)["identifier"]
            if extra not in resources:
                resources.append(extra)

        entered = anchor_ts - randrange(history)
        updated = entered + int(random_() * (anchor_ts - entered))
        required = None
        if random_() < 0.7:
            required = stamp(entered + randrange(1, 22) * _DAY)
        first, last = choice(CONTACT_FIRST_NAMES), choice(CONTACT_LAST_NAMES)
        summary = choice(pool.summaries)
        budget = choice((0.5, 1.0, 2.0, 4.0, 8.0))
        enterer = owner["identifier"] if owner is not None else "EmailConnector"
        updater = owner["identifier"] if owner is not None else choice(active)["identifier"]
        board_name = pool.board["name"]
        contact = contacts.get((company["id"], first, last))
        if contact is None:
            contact_id = FIRST_CONTACT_ID + len(contacts)
            contact = _contact(contact_id, first, last, company, stamp(entered))
            contacts[(company["id"], first, last)] = contact

        tickets.append(
            ticket_record(
                ticket_id=ticket_id,
                summary=summary,
                board=refs[id(pool.board)],
                status=refs[id(status)],
                closed=closed,
                priority=refs[id(priority)],
                company=refs[id(company)],
                contact_name=f"{first} {last}",
                contact_email=contact["communicationEmail"],
                contact=contact_ref(contact),
                contact_phone=contact["defaultPhoneNbr"],
                owner=None if owner is None else refs[id(owner)],
                resources=resources,
                required_date=required,
                severity=choice(SEVERITIES),
                impact=choice(SEVERITIES),
                source=sources[3] if board_name == "Alerts" else choice(sources[:3]),
                budget_hours=budget,
                actual_hours=round(random_() * budget * 4) / 4,
                date_entered=stamp(entered),
                entered_by=enterer,
                last_updated=stamp(updated),
                updated_by=updater,
            )
        )
        descriptions[ticket_id] = f"{summary}. {choice(DETAILS)} Contact: {first} {last}."
    return (
        tuple(tickets),
        descriptions,
        tuple(_without_email(contact) for contact in contacts.values()),
    )


def _contact(
    contact_id: int, first: str, last: str, company: JsonObject, entered: str
) -> JsonObject:
    """A `Contact` record; its e-mail is kept aside (`communicationEmail`) for the tickets
    to copy, since the model holds e-mail only in `communicationItems`, whose item model
    the facts do not document."""
    email_user = f"{first}.{last}".lower().replace("'", "")
    return {
        "id": contact_id,
        "firstName": first,
        "lastName": last,
        "company": company_ref(company),
        "defaultPhoneNbr": f"555{2000 + contact_id % 8000:04d}",
        "defaultPhoneType": "Direct",
        "inactiveFlag": False,
        "_info": {"lastUpdated": entered, "updatedBy": "admin1", "dateEntered": entered},
        "communicationEmail": f"{email_user}@{company['identifier'].lower()}.example",
    }


def _without_email(contact: JsonObject) -> JsonObject:
    return {key: value for key, value in contact.items() if key != "communicationEmail"}


@dataclass(frozen=True)
class Assignments:
    """Which open tickets are a member's and how, and the projects they work on."""

    service: frozenset[int]  # open service tickets the member owns or is a resource of
    project: frozenset[int]  # open project tickets the member owns or is a resource of
    project_owned: frozenset[int]  # the open project tickets the member owns
    scheduled_only: frozenset[int]  # open tickets theirs only by an open "S" schedule entry
    projects: frozenset[int]  # ids of projects the member is a team member of

    @property
    def open_tickets(self) -> frozenset[int]:
        """Every open ticket assigned to the member, by any of the three routes."""
        return self.service | self.project | self.scheduled_only


def open_held_ids(tickets: Iterable[JsonObject], identifier: str) -> frozenset[int]:
    """Open tickets the member owns or is a resource of."""
    return frozenset(t["id"] for t in tickets if not t["closedFlag"] and holds(t, identifier))


def schedule_only_ids(
    tickets: Iterable[JsonObject], entries: Iterable[JsonObject], identifier: str
) -> frozenset[int]:
    """Open tickets with an open (not done) ticket-type ("S") schedule entry for the
    member, who neither owns them nor is a resource of them."""
    scheduled = {
        e["objectId"]
        for e in entries
        if e["member"]["identifier"] == identifier
        and e["type"]["identifier"] == "S"
        and not e["doneFlag"]
    }
    return frozenset(
        t["id"]
        for t in tickets
        if t["id"] in scheduled and not t["closedFlag"] and not holds(t, identifier)
    )


def team_project_ids(team_members: Iterable[JsonObject], identifier: str) -> frozenset[int]:
    return frozenset(
        t["projectId"] for t in team_members if t["member"]["identifier"] == identifier
    )


def assignments(dataset: Dataset, identifier: str) -> Assignments:
    """What `identifier` holds in a seeded dataset (the same helpers work on a live
    store's records)."""
    every = (*dataset.tickets, *dataset.project_tickets)
    return Assignments(
        service=open_held_ids(dataset.tickets, identifier),
        project=open_held_ids(dataset.project_tickets, identifier),
        project_owned=frozenset(
            t["id"]
            for t in dataset.project_tickets
            if not t["closedFlag"] and t.get("owner", {}).get("identifier") == identifier
        ),
        scheduled_only=schedule_only_ids(every, dataset.schedule_entries, identifier),
        projects=team_project_ids(dataset.team_members, identifier),
    )


def is_service_ticket(ticket: JsonObject) -> bool:
    """Project tickets carry no `recordType` (the ProjectTicket model documents none)."""
    return bool(ticket.get("recordType") == RECORD_TYPE_SERVICE)
