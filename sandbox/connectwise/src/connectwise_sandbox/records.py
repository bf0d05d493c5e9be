"""The JSON shapes of ConnectWise records, shared by the seed and by live changes.

Real responses leave a property out when it is null (no ``"owner": null``), so the
builders here omit absent values instead of writing ``None``. Records are treated as
immutable once built: a change replaces the whole ticket dict, which lets readers
serialise a snapshot without holding the store's lock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final

JsonObject = dict[str, Any]

TIMESTAMP_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
RECORD_TYPE_SERVICE: Final = "ServiceTicket"
RECORD_TYPE_PROJECT: Final = "ProjectTicket"
RESOURCE_SEPARATOR: Final = ", "
_DAY_SECONDS: Final = 86_400


def format_timestamp(moment: datetime) -> str:
    """ConnectWise's wire format: UTC, whole seconds, `Z`."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


class TimestampFormatter:
    """`format_timestamp` for epoch seconds, fast enough for 100k tickets: the date part
    of the string is cached, the time of day is plain arithmetic."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}

    def __call__(self, epoch_seconds: int) -> str:
        day, seconds = divmod(epoch_seconds, _DAY_SECONDS)
        prefix = self._days.get(day)
        if prefix is None:
            prefix = format_timestamp(datetime.fromtimestamp(day * _DAY_SECONDS, UTC))[:11]
            self._days[day] = prefix
        hours, rest = divmod(seconds, 3600)
        return f"{prefix}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}Z"


def parse_timestamp(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def next_last_updated(previous: str | None, now: datetime) -> str:
    """`now`, bumped one second past `previous` when needed so every change sorts later."""
    moment = now.astimezone(UTC).replace(microsecond=0)
    if previous is not None:
        earliest = parse_timestamp(previous) + timedelta(seconds=1)
        moment = max(moment, earliest)
    return format_timestamp(moment)


def member_ref(member: JsonObject) -> JsonObject:
    name = f"{member['firstName']} {member['lastName']}"
    return {"id": member["id"], "identifier": member["identifier"], "name": name}


def board_ref(board: JsonObject) -> JsonObject:
    return {"id": board["id"], "name": board["name"]}


def status_ref(status: JsonObject) -> JsonObject:
    """A ServiceStatusReference: `id`, `name`, `sort` (the status' sort order)."""
    return {"id": status["id"], "name": status["name"], "sort": status["sortOrder"]}


def priority_ref(priority: JsonObject) -> JsonObject:
    return {
        "id": priority["id"],
        "name": priority["name"],
        "sort": priority["sortOrder"],
        "level": priority["level"],
    }


def company_ref(company: JsonObject) -> JsonObject:
    return {"id": company["id"], "identifier": company["identifier"], "name": company["name"]}


def contact_ref(contact: JsonObject) -> JsonObject:
    """A ContactReference: `id` and `name` (first and last)."""
    return {"id": contact["id"], "name": f"{contact['firstName']} {contact['lastName']}"}


def project_ref(project: JsonObject) -> JsonObject:
    return {"id": project["id"], "name": project["name"]}


def phase_ref(phase: JsonObject) -> JsonObject:
    # A phase's reference names it by its description, as ProjectPhaseReference does.
    return {"id": phase["id"], "name": phase["description"]}


def ticket_record(
    *,
    ticket_id: int,
    summary: str,
    board: JsonObject,
    status: JsonObject,
    closed: bool,
    priority: JsonObject,
    company: JsonObject,
    contact_name: str,
    contact_email: str,
    owner: JsonObject | None,
    resources: list[str],
    required_date: str | None,
    severity: str,
    impact: str,
    source: JsonObject,
    budget_hours: float,
    actual_hours: float,
    date_entered: str,
    entered_by: str,
    last_updated: str,
    updated_by: str,
    contact: JsonObject | None = None,
    contact_phone: str | None = None,
    sla: JsonObject | None = None,
) -> JsonObject:
    """A service ticket as `GET /service/tickets/{id}` returns it.

    `board`, `status`, … are reference shapes (`board_ref(...)`), shared between tickets;
    `closed` is the status' `closedStatus`, which is what `closedFlag` follows in the product.
    `contact` is a ContactReference (`contact_ref(...)`); `contactName`, `…PhoneNumber` and
    `…EmailAddress` are the ticket's own copies, as ConnectWise keeps them. `sla`: the
    ticket's SLA fields (`SLA_FIELDS`), if it has an SLA.
    """
    ticket: JsonObject = {
        "id": ticket_id,
        "summary": summary,
        "recordType": RECORD_TYPE_SERVICE,
        "board": board,
        "status": status,
        "company": company,
    }
    if contact is not None:
        ticket["contact"] = contact
    ticket["contactName"] = contact_name
    if contact_phone is not None:
        ticket["contactPhoneNumber"] = contact_phone
    ticket |= {
        "contactEmailAddress": contact_email,
        "source": source,
        "severity": severity,
        "impact": impact,
        "priority": priority,
    }
    if owner is not None:
        ticket["owner"] = owner
    if required_date is not None:
        ticket["requiredDate"] = required_date
    ticket |= {
        "budgetHours": budget_hours,
        "actualHours": actual_hours,
        "closedFlag": closed,
        "approved": True,
        "customerUpdatedFlag": False,
        "hasChildTicket": False,
        "billTime": "Billable",
    }
    if resources:
        ticket["resources"] = RESOURCE_SEPARATOR.join(resources)
    if closed:
        ticket["closedDate"] = last_updated
        ticket["closedBy"] = updated_by
    if sla:
        ticket |= sla
    ticket["_info"] = {
        "lastUpdated": last_updated,
        "updatedBy": updated_by,
        "dateEntered": date_entered,
        "enteredBy": entered_by,
    }
    return ticket


# Fields of a service ticket (the `Ticket` model) that the `ProjectTicket` model does not
# document, so a project ticket never carries them.
# A service ticket's SLA facts (seeded by `sla_seed`): the `ProjectTicket` model has none.
SLA_FIELDS: Final = (
    "sla",
    "escalationStartDateUTC",
    "respondMinutes",
    "resPlanMinutes",
    "resolveMinutes",
    "dateResponded",
    "dateResplan",
    "dateResolved",
    "isInSla",
)
SERVICE_ONLY_FIELDS: Final = frozenset(
    {"recordType", "severity", "impact", "hasChildTicket", *SLA_FIELDS}
)


def as_project_ticket(
    ticket: JsonObject, *, project: JsonObject, phase: JsonObject, wbs_code: str
) -> JsonObject:
    """A project ticket: a ticket record (`ticket_record`) of a project board without the
    service-only fields, with its project, phase and WBS code after its status."""
    record: JsonObject = {}
    for key, value in ticket.items():
        if key in SERVICE_ONLY_FIELDS:
            continue
        record[key] = value
        if key == "status":
            record["project"] = project
            record["phase"] = phase
            record["wbsCode"] = wbs_code
    return record


def touched(record: JsonObject, last_updated: str, updated_by: str, **changes: Any) -> JsonObject:
    """A copy of `record` with `changes` and a new `_info.lastUpdated`/`updatedBy` (records
    are never changed in place)."""
    info = record["_info"] | {"lastUpdated": last_updated, "updatedBy": updated_by}
    return record | changes | {"_info": info}


def split_resources(resources: str | None) -> list[str]:
    if not resources:
        return []
    return [part.strip() for part in resources.split(",") if part.strip()]
