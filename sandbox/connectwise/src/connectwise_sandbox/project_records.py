"""The JSON shapes of projects, their phases and team members, and the project and
phase statuses — shared by the seed and by live changes. Nulls are omitted and records
are never changed in place, as in `records.py`.

A phase has no `closedFlag` (the `ProjectPhase` model documents none): its state is its
`status`, a PhaseStatusReference to a `/project/phaseStatuses` record, which carries
`closedFlag`."""

from __future__ import annotations

from typing import Final

from connectwise_sandbox.records import JsonObject

BILLING_METHOD: Final = "FixedFee"


def status_record(status_id: int, name: str, *, closed: bool, created: str) -> JsonObject:
    """A `GET /project/statuses` or `/project/phaseStatuses` row: the `ProjectStatus` and
    `PhaseStatus` models share these fields."""
    return {
        "id": status_id,
        "name": name,
        "defaultFlag": status_id == 1,
        "inactiveFlag": False,
        "closedFlag": closed,
        "_info": {"lastUpdated": created, "updatedBy": "admin1"},
    }


def phase_status_ref(status: JsonObject) -> JsonObject:
    """A PhaseStatusReference: `id`, `name`."""
    return {"id": status["id"], "name": status["name"]}


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
    scheduled_start: str,
    scheduled_end: str,
    last_updated: str,
) -> JsonObject:
    """A `GET /project/projects/{id}/phases` row; `status` is a PhaseStatusReference and
    the deadline is the scheduled end."""
    return {
        "id": phase_id,
        "projectId": project_id,
        "description": description,
        "wbsCode": wbs_code,
        "status": status,
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
    """A `GET /project/projects/{id}/teamMembers` row: who works on the project. The
    facts have no `ProjectTeamMember` model (the endpoint is documented, its model is
    not), so this shape is not held against the contract."""
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


def example_team_member() -> JsonObject:
    """Every property present: what the team member schema is read from (the contract
    has no ProjectTeamMember model to read it from)."""
    moment = "2000-01-01T00:00:00Z"
    return team_member_record(
        team_member_id=1,
        project_id=1,
        member={"id": 1, "identifier": "x", "name": "x"},
        role={"id": 1, "name": "x"},
        start=moment,
        end=moment,
        last_updated=moment,
    )
