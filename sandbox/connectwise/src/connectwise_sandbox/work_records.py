"""The JSON shapes of work around tickets — schedule entries, ticket notes and time
entries — shared by the seed, the API's writes and the admin API."""

from __future__ import annotations

from typing import Final

from connectwise_sandbox.records import JsonObject

SCHEDULE_STATUS: Final = {"id": 2, "name": "Firm"}
EMAIL_CONNECTOR: Final = "EmailConnector"


def schedule_entry_record(
    *,
    entry_id: int,
    object_id: int,
    name: str,
    member: JsonObject,
    schedule_type: JsonObject,
    done: bool,
    date_start: str,
    date_end: str,
    hours: float,
    date_entered: str,
    last_updated: str,
    updated_by: str,
) -> JsonObject:
    """A `GET /schedule/entries` row. `objectId` is the ticket's id when `type.identifier`
    is "S", an activity's id when it is "C"."""
    return {
        "id": entry_id,
        "objectId": object_id,
        "name": name,
        "member": member,
        "type": schedule_type,
        "status": dict(SCHEDULE_STATUS),
        "dateStart": date_start,
        "dateEnd": date_end,
        "hours": hours,
        "doneFlag": done,
        "acknowledgedFlag": False,
        "ownerFlag": False,
        "_info": {
            "lastUpdated": last_updated,
            "updatedBy": updated_by,
            "dateEntered": date_entered,
        },
    }


def description_note(
    ticket_id: int, text: str, created: str, member: JsonObject | None
) -> JsonObject:
    """The ticket's initial description as `GET …/tickets/{id}/notes` lists it; its id is
    the ticket's."""
    note: JsonObject = {
        "id": ticket_id,
        "ticketId": ticket_id,
        "text": text,
        "detailDescriptionFlag": True,
        "internalAnalysisFlag": False,
        "resolutionFlag": False,
        "issueFlag": False,
        "internalFlag": False,
        "externalFlag": False,
        "dateCreated": created,
        "createdBy": member["identifier"] if member else EMAIL_CONNECTOR,
    }
    if member is not None:
        note["member"] = member
    note["_info"] = {"lastUpdated": created, "updatedBy": note["createdBy"]}
    return note


def added_note(
    *,
    note_id: int,
    ticket_id: int,
    text: str,
    detail: bool,
    internal: bool,
    resolution: bool,
    member: JsonObject,
    created: str,
) -> JsonObject:
    """A note added with `POST …/tickets/{id}/notes`: discussion, internal analysis
    and/or resolution, by the calling member."""
    return {
        "id": note_id,
        "ticketId": ticket_id,
        "text": text,
        "detailDescriptionFlag": detail,
        "internalAnalysisFlag": internal,
        "resolutionFlag": resolution,
        "issueFlag": False,
        "internalFlag": internal,
        "externalFlag": not internal,
        "dateCreated": created,
        "createdBy": member["identifier"],
        "member": member,
        "_info": {"lastUpdated": created, "updatedBy": member["identifier"]},
    }


def customer_note(
    *, note_id: int, ticket_id: int, text: str, contact: JsonObject | None, name: str, created: str
) -> JsonObject:
    """A discussion note the customer wrote (by e-mail or the portal): it names the
    ticket's contact rather than a member and carries `customerUpdatedFlag` (both fields
    of `ServiceNote` in the 2025.1 models). `createdBy` is the contact's name: the
    documentation does not say what ConnectWise puts there for a customer."""
    note = added_note(
        note_id=note_id,
        ticket_id=ticket_id,
        text=text,
        detail=True,
        internal=False,
        resolution=False,
        member={"identifier": name},
        created=created,
    )
    del note["member"]
    note["customerUpdatedFlag"] = True
    if contact is not None:
        note["contact"] = contact
    return note


def time_entry_record(
    *,
    entry_id: int,
    ticket: JsonObject,
    charge_to_type: str,
    member: JsonObject,
    time_start: str,
    time_end: str,
    actual_hours: float,
    billable_option: str,
    work_type: JsonObject,
    notes: str | None,
    created: str,
    entered_by: str,
) -> JsonObject:
    """A `GET /time/entries` row charged to a service or project ticket, of a work type
    (a WorkTypeReference: `id`, `name`, `utilizationFlag`)."""
    entry: JsonObject = {
        "id": entry_id,
        "company": ticket["company"],
        "chargeToId": ticket["id"],
        "chargeToType": charge_to_type,
        "member": member,
        "ticket": {"id": ticket["id"], "summary": ticket["summary"]},
    }
    if "project" in ticket:
        entry["project"] = ticket["project"]
        entry["phase"] = ticket["phase"]
    entry |= {
        "workType": {
            "id": work_type["id"],
            "name": work_type["name"],
            "utilizationFlag": work_type["utilizationFlag"],
        },
        "timeStart": time_start,
        "timeEnd": time_end,
        "actualHours": actual_hours,
        "billableOption": billable_option,
    }
    if notes is not None:
        entry["notes"] = notes
    entry |= {
        "dateEntered": created,
        "enteredBy": entered_by,
        "_info": {"lastUpdated": created, "updatedBy": entered_by, "dateEntered": created},
    }
    return entry
