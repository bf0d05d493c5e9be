"""The JSON shapes of projects, their phases and team members, and the project
statuses — shared by the seed and by live changes. Nulls are omitted and records are
never changed in place, as in `records.py`."""

from __future__ import annotations

from typing import Final

from connectwise_sandbox.records import JsonObject

BILLING_METHOD: Final = "FixedFee"


def project_status_record(status_id: int, name: str, *, closed: bool, created: str) -> JsonObject:
    """A `GET /project/statuses` row."""
    return {
        "id": status_id,
        "name": name,
        "defaultFlag": status_id == 1,
        "inactiveFlag": False,
        "closedFlag": closed,
        "_info": {"lastUpdated": created, "updatedBy": "admin1"},
    }


def project_record(
    *,
    project_id: int,
    name: str,
    status: JsonObject,
    closed: bool,
    company: JsonObject,
    board: JsonObject,
    manager: JsonObject | None,
    estimated_start: str,
    estimated_end: str,
    description: str,
    date_entered: str,
    entered_by: str,
    last_updated: str,
    updated_by: str,
) -> JsonObject:
    """A project as `GET /project/projects/{id}` returns it; `status` is `{id, name}` and
    `closed` is that status' `closedFlag`."""
    project: JsonObject = {
        "id": project_id,
        "name": name,
        "status": status,
        "closedFlag": closed,
        "company": company,
        "board": board,
    }
    if manager is not None:
        project["manager"] = manager
    project |= {
        "estimatedStart": estimated_start,
        "estimatedEnd": estimated_end,
        "billingMethod": BILLING_METHOD,
        "description": description,
        "_info": {
            "lastUpdated": last_updated,
            "updatedBy": updated_by,
            "dateEntered": date_entered,
            "enteredBy": entered_by,
        },
    }
    return project


def phase_record(
    *,
    phase_id: int,
    project_id: int,
    description: str,
    wbs_code: str,
    status: JsonObject,
    closed: bool,
    scheduled_start: str,
    scheduled_end: str,
    last_updated: str,
) -> JsonObject:
    """A `GET /project/projects/{id}/phases` row; the deadline is the scheduled end."""
    return {
        "id": phase_id,
        "projectId": project_id,
        "description": description,
        "wbsCode": wbs_code,
        "status": status,
        "closedFlag": closed,
        "scheduledStart": scheduled_start,
        "scheduledEnd": scheduled_end,
        "deadlineDate": scheduled_end,
        "_info": {"lastUpdated": last_updated, "updatedBy": "admin1"},
    }


def team_member_record(
    *,
    team_member_id: int,
    project_id: int,
    member: JsonObject,
    role: JsonObject,
    start: str,
    end: str,
    last_updated: str,
) -> JsonObject:
    """A `GET /project/projects/{id}/teamMembers` row: who works on the project."""
    return {
        "id": team_member_id,
        "projectId": project_id,
        "member": member,
        "projectRole": role,
        "workRole": {"id": 1, "name": "Engineer"},
        "startDate": start,
        "endDate": end,
        "_info": {"lastUpdated": last_updated, "updatedBy": "admin1"},
    }


_EXAMPLE_TIME: Final = "2000-01-01T00:00:00Z"
_EXAMPLE_REF: Final = {"id": 1, "name": "x"}
_EXAMPLE_MEMBER: Final = {"id": 1, "identifier": "x", "name": "x"}


def example_project() -> JsonObject:
    """A project with every optional property — what the project schema is read from."""
    return project_record(
        project_id=1,
        name="x",
        status=dict(_EXAMPLE_REF),
        closed=False,
        company={"id": 1, "identifier": "x", "name": "x"},
        board=dict(_EXAMPLE_REF),
        manager=dict(_EXAMPLE_MEMBER),
        estimated_start=_EXAMPLE_TIME,
        estimated_end=_EXAMPLE_TIME,
        description="x",
        date_entered=_EXAMPLE_TIME,
        entered_by="x",
        last_updated=_EXAMPLE_TIME,
        updated_by="x",
    )


def example_phase() -> JsonObject:
    return phase_record(
        phase_id=1,
        project_id=1,
        description="x",
        wbs_code="1",
        status=dict(_EXAMPLE_REF),
        closed=False,
        scheduled_start=_EXAMPLE_TIME,
        scheduled_end=_EXAMPLE_TIME,
        last_updated=_EXAMPLE_TIME,
    )


def example_team_member() -> JsonObject:
    return team_member_record(
        team_member_id=1,
        project_id=1,
        member=dict(_EXAMPLE_MEMBER),
        role=dict(_EXAMPLE_REF),
        start=_EXAMPLE_TIME,
        end=_EXAMPLE_TIME,
        last_updated=_EXAMPLE_TIME,
    )
