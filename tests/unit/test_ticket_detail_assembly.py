"""A ticket's detail from ConnectWise's records (`details.assemble`, pure): which note is
the description, the order of notes and entries, the contact and its link, the board's
statuses, and records with missing or malformed parts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from syntaskio_common.credentials import AuthScheme, CredentialLease
from syntaskio_connector.assignment import Entity
from syntaskio_connector.details import assemble

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
LEASE = CredentialLease(
    integration_id="int-1",
    tenant_id="acme",
    user_id="alex",
    api_base_url="https://na.myconnectwise.net/v2025_1/apis/3.0/",
    site_url="https://na.myconnectwise.net",
    company_id="acme",
    member_identifier="atech",
    client_id="client",
    scheme=AuthScheme.BASIC,
    public_key="pub",
    private_key="priv",
    version=1,
    generation=1,
)
TICKET: dict[str, Any] = {
    "id": 4711,
    "summary": "Printer offline",
    "board": {"id": 1, "name": "Service Desk"},
    "status": {"id": 12, "name": "In Progress"},
    "company": {"id": 250, "identifier": "Contoso", "name": "Contoso Ltd"},
    "contact": {"id": 3001, "name": "Avery Lee"},
    "contactName": "Avery Lee",
    "contactPhoneNumber": "5552001",
    "contactEmailAddress": "avery.lee@contoso.example",
    "resources": "atech, bjones",
    "budgetHours": 2,
    "actualHours": 0.75,
    "_info": {"lastUpdated": "2026-12-05T10:00:00Z"},
}
STATUSES = {
    12: {"id": 12, "name": "In Progress", "sortOrder": 2},
    11: {"id": 11, "name": "New", "sortOrder": 0},
    19: {"id": 19, "name": "Closed", "sortOrder": 9, "closedStatus": True},
    15: {"id": 15, "name": "Old status", "sortOrder": 1, "inactive": True},
}

WORK_TYPES = {
    1: {"id": 1, "name": "Remote Support", "billTime": "Billable", "overallDefaultFlag": True},
    2: {"id": 2, "name": "Travel", "billTime": "NoCharge"},
    3: {"id": 3, "name": "Legacy", "billTime": "Billable", "inactiveFlag": True},
    4: {"id": 4, "name": "Onsite", "billTime": "Billable"},
}


def note(note_id: int, created: str | None, **flags: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"id": note_id, "text": f"note {note_id}", **flags}
    if created:
        found["dateCreated"] = created
    return found


def detail(**parts: Any) -> Any:
    return assemble(
        Entity.SERVICE_TICKET,
        parts.pop("ticket", TICKET),
        notes=parts.pop("notes", []),
        time_entries=parts.pop("time_entries", []),
        schedule_entries=parts.pop("schedule_entries", []),
        statuses=parts.pop("statuses", STATUSES),
        work_types=parts.pop("work_types", WORK_TYPES),
        lease=LEASE,
        fetched_at=NOW,
    )


def test_the_first_discussion_note_is_the_description_and_the_rest_follow_in_order() -> None:
    found = detail(
        notes=[
            note(9, "2026-12-04T09:00:00Z", internalAnalysisFlag=True),
            note(4711, "2026-12-01T08:00:00Z", detailDescriptionFlag=True),
            note(8, "2026-12-04T09:00:00Z", resolutionFlag=True, detailDescriptionFlag=True),
            note(7, None, detailDescriptionFlag=True),  # no date: last
        ]
    )
    assert found.description == "note 4711"
    assert [n.id for n in found.notes] == [8, 9, 7]
    assert (found.notes[0].resolution, found.notes[0].discussion) == (True, True)
    assert found.notes[1].internal


def test_a_first_note_that_is_internal_is_no_description() -> None:
    found = detail(notes=[note(1, "2026-12-01T08:00:00Z", internalAnalysisFlag=True)])
    assert found.description is None
    assert [n.id for n in found.notes] == [1]


def test_authors_are_named_by_member_then_contact_then_creator() -> None:
    found = detail(
        notes=[
            note(
                1,
                "2026-12-01T08:00:00Z",
                member={"id": 1, "identifier": "atech", "name": "Alex Tech"},
            ),
            note(2, "2026-12-01T09:00:00Z", contact={"id": 3001, "name": "Avery Lee"}),
            note(3, "2026-12-01T10:00:00Z", createdBy="EmailConnector"),
        ]
    )
    assert found.description is None  # the first note is not a discussion note
    assert [n.author for n in found.notes] == ["Alex Tech", "Avery Lee", "EmailConnector"]


def test_the_contact_with_its_link_and_the_ticket_facts() -> None:
    found = detail()
    assert found.contact is not None
    assert (found.contact.name, found.contact.phone, found.contact.email) == (
        "Avery Lee",
        "5552001",
        "avery.lee@contoso.example",
    )
    assert found.contact.url == (
        "https://na.myconnectwise.net/v2025_1/services/system_io/router/openrecord.rails"
        "?recordType=ContactFV&recid=3001&companyName=acme"
    )
    assert found.url is not None
    assert "service_recid=4711" in found.url
    assert found.resources == ["atech", "bjones"]
    assert (found.budget_hours, found.actual_hours) == (2.0, 0.75)
    assert found.updated_at == datetime(2026, 12, 5, 10, tzinfo=UTC)


def test_a_ticket_without_a_contact_has_none() -> None:
    bare = {k: v for k, v in TICKET.items() if not k.startswith("contact")}
    assert detail(ticket=bare).contact is None
    named_only = bare | {"contactName": "Front desk"}
    contact = detail(ticket=named_only).contact
    assert contact is not None
    assert (contact.name, contact.id, contact.url) == ("Front desk", None, None)


def test_the_boards_active_statuses_in_board_order_closed_ones_marked() -> None:
    found = detail()
    assert [(s.id, s.closed) for s in found.statuses] == [(11, False), (12, False), (19, True)]
    assert found.status is not None
    assert (found.status.id, found.status.name, found.status.closed) == (12, "In Progress", False)


def test_entries_in_time_order_and_malformed_parts_left_out() -> None:
    found = detail(
        time_entries=[
            {"id": 2, "timeStart": "2026-12-04T10:00:00Z", "actualHours": 1, "member": "atech"},
            {"id": 1, "timeStart": "2026-12-03T10:00:00Z", "actualHours": "1.5"},
            {"id": "x"},
        ],
        schedule_entries=[
            {"id": 5, "dateStart": "2026-12-06T08:00:00Z", "member": {"identifier": "atech"}},
            {"id": 4, "dateStart": "2026-12-05T08:00:00Z", "doneFlag": True, "member": None},
        ],
        ticket=TICKET | {"owner": "not a reference", "board": None, "budgetHours": True},
    )
    assert [(e.id, e.hours, e.member) for e in found.time_entries] == [
        (1, None, None),
        (2, 1.0, None),
    ]
    assert [(e.id, e.done, e.member) for e in found.schedule_entries] == [
        (4, True, None),
        (5, False, "atech"),
    ]
    assert (found.owner, found.board, found.budget_hours) == (None, None, None)


def test_work_types_are_the_active_ones_with_the_default_first() -> None:
    found = detail()
    assert [(w.name, w.default, w.billable_option) for w in found.work_types] == [
        ("Remote Support", True, "Billable"),
        ("Onsite", False, "Billable"),
        ("Travel", False, "NoCharge"),
    ]
    own = detail(ticket=TICKET | {"workType": {"id": 2, "name": "Travel"}})
    assert [w.name for w in own.work_types if w.default] == ["Travel"]
    inactive = detail(ticket=TICKET | {"workType": {"id": 3, "name": "Legacy"}})
    assert [w.name for w in inactive.work_types if w.default] == ["Remote Support"]
