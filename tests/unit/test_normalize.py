from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syntaskio_aggregator.normalize import (
    NormalizationError,
    normalize,
    normalize_phase,
    normalize_ticket,
    removal,
    ticket_priority,
    ticket_status,
)
from syntaskio_common.task import SourceType, TaskPriority, TaskStatus, task_id


def raw(**ticket: Any) -> dict[str, Any]:
    record = {
        "id": 4211,
        "summary": "Outlook not syncing on CFO laptop",
        "status": {"id": 2, "name": "In Progress"},
        "priority": {"id": 3, "name": "Priority 2 - Quick Response", "level": "High"},
        "board": {"id": 1, "name": "Service Desk"},
        "company": {"id": 7, "identifier": "AcmeCorp", "name": "Acme Corp"},
        "owner": {"id": 1, "identifier": "atech", "name": "Alex Tech"},
        "resources": "atech, bjones",
        "closedFlag": False,
        "requiredDate": "2026-12-01T17:00:00Z",
        "_info": {"lastUpdated": "2026-11-20T10:00:00Z", "dateEntered": "2026-11-01T08:00:00Z"},
    } | ticket
    return {
        "tenant_id": "t1",
        "user_id": "u1",
        "integration_id": "i1",
        "api_base_url": "https://api-na.myconnectwise.net/v2025_1/apis/3.0/",
        "company_id": "acme",
        "entity": "service_ticket",
        "record": record,
    }


def test_a_service_ticket_becomes_a_task_with_source_details() -> None:
    task = normalize_ticket(raw())
    assert task.id == task_id("t1", "u1", task.source, SourceType.SERVICE_TICKET, "4211")
    assert task.title == "Outlook not syncing on CFO laptop"
    assert task.status is TaskStatus.IN_PROGRESS
    assert task.priority is TaskPriority.HIGH
    assert task.due_at == datetime(2026, 12, 1, 17, tzinfo=UTC)
    assert task.source_updated_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert task.source_data["board"] == {"id": 1, "name": "Service Desk"}
    assert task.source_data["resources"] == ["atech", "bjones"]
    assert task.url == (
        "https://api-na.myconnectwise.net/v2025_1/services/system_io/Service/"
        "fv_sr100_request.rails?service_recid=4211&companyName=acme"
    )


@pytest.mark.parametrize(
    ("ticket", "expected"),
    [
        ({"closedFlag": True, "status": {"name": "In Progress"}}, TaskStatus.COMPLETED),
        ({"status": {"name": "New"}}, TaskStatus.PENDING),
        ({"status": {"name": "Working Issue Now"}}, TaskStatus.IN_PROGRESS),
        ({"status": None}, TaskStatus.PENDING),
    ],
)
def test_status_mapping(ticket: dict[str, Any], expected: TaskStatus) -> None:
    assert ticket_status(ticket) is expected


@pytest.mark.parametrize(
    ("priority", "expected"),
    [
        ({"name": "Priority 1 - Emergency Response"}, TaskPriority.URGENT),
        ({"name": "Priority 3 - Normal Response"}, TaskPriority.MEDIUM),
        ({"name": "Priority 4 - Schedule Maintenance"}, TaskPriority.LOW),
        ({"name": "Whatever", "level": "Urgent"}, TaskPriority.URGENT),
        (None, TaskPriority.MEDIUM),
    ],
)
def test_priority_mapping(priority: Any, expected: TaskPriority) -> None:
    assert ticket_priority({"priority": priority}) is expected


@pytest.mark.parametrize(
    "broken",
    [
        {"_info": {}},
        {"_info": {"lastUpdated": "yesterday"}},
        {"id": None},
    ],
)
def test_records_without_identity_or_version_are_rejected(broken: dict[str, Any]) -> None:
    with pytest.raises(NormalizationError):
        normalize_ticket(raw(**broken))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(
    summary=json_values,
    status=json_values,
    priority=json_values,
    company=json_values,
    resources=json_values,
    required=json_values,
)
def test_normalising_never_fails_on_odd_field_values(
    summary: Any, status: Any, priority: Any, company: Any, resources: Any, required: Any
) -> None:
    record = raw(
        summary=summary,
        status=status,
        priority=priority,
        company=company,
        resources=resources,
        requiredDate=required,
    )
    first = normalize_ticket(record)
    assert normalize_ticket(record) == first  # idempotent and deterministic


def test_a_removal_names_its_task_and_when_it_was_observed() -> None:
    gone = removal(
        {
            "tenant_id": "t1",
            "user_id": "u1",
            "external_id": "42",
            "entity": "project_ticket",
            "observed_at": "2026-11-22T10:00:00+00:00",
        }
    )
    assert (gone.tenant_id, gone.user_id, gone.external_id) == ("t1", "u1", "42")
    assert gone.source_type is SourceType.PROJECT_TICKET
    assert gone.observed_at == datetime(2026, 11, 22, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "missing", ["tenant_id", "user_id", "external_id", "observed_at", "entity"]
)
def test_a_removal_missing_a_key_is_rejected(missing: str) -> None:
    data = {
        "entity": "service_ticket",
        "tenant_id": "t1",
        "user_id": "u1",
        "external_id": "42",
        "observed_at": "2026-11-22T10:00:00+00:00",
    }
    del data[missing]
    with pytest.raises(NormalizationError):
        removal(data)


def test_a_project_ticket_keeps_its_project_phase_and_why_it_is_assigned() -> None:
    data = raw(
        project={"id": 3, "name": "Office move"},
        phase={"id": 9, "name": "Cabling"},
        wbsCode="1.2",
    )
    data["entity"] = "project_ticket"
    data["assignment"] = {"reasons": ["resource", "schedule"], "schedule": []}
    task = normalize_ticket(data)
    assert task.source_type is SourceType.PROJECT_TICKET
    assert task.source_data["project"] == {"id": 3, "name": "Office move"}
    assert task.source_data["phase"] == {"id": 9, "name": "Cabling"}
    assert task.source_data["assignment"] == ["resource", "schedule"]
    assert task.id != normalize_ticket(raw()).id  # one id space per ticket kind


def test_an_unknown_entity_is_refused() -> None:
    data = raw()
    data["entity"] = "invoice"
    with pytest.raises(NormalizationError, match="unsupported entity"):
        normalize_ticket(data)


def phase_raw(context: Any = None, **phase: Any) -> dict[str, Any]:
    record = {
        "id": 57,
        "projectId": 3,
        "description": "Design",
        "wbsCode": "2",
        "status": {"id": 1, "name": "Open"},
        "closedFlag": False,
        "scheduledStart": "2026-11-01T00:00:00Z",
        "scheduledEnd": "2026-11-30T00:00:00Z",
        "deadlineDate": "2026-12-05T00:00:00Z",
        "_info": {"lastUpdated": "2026-11-20T10:00:00Z"},
    } | phase
    project = {
        "id": 3,
        "name": "Office move",
        "company": {"id": 7, "identifier": "AcmeCorp", "name": "Acme Corp"},
        "board": {"id": 4, "name": "Professional Services"},
        "status": {"id": 1, "name": "Open"},
    }
    return {
        "tenant_id": "t1",
        "user_id": "u1",
        "integration_id": "i1",
        "api_base_url": "https://api-na.myconnectwise.net/v2025_1/apis/3.0/",
        "company_id": "acme",
        "entity": "project_phase",
        "record": record,
        "assignment": {"reasons": ["project_work"], "schedule": []},
        "context": {"project": project, "started": False} if context is None else context,
    }


def test_a_project_phase_becomes_a_task_named_after_phase_and_project() -> None:
    task = normalize(phase_raw())
    assert task == normalize_phase(phase_raw())
    assert task.source_type is SourceType.PROJECT_PHASE
    assert task.id == task_id("t1", "u1", task.source, SourceType.PROJECT_PHASE, "57")
    assert task.external_id == "57"
    assert task.title == "Design — Office move"
    assert task.status is TaskStatus.PENDING
    assert task.source_status == "Open"
    assert task.priority is TaskPriority.MEDIUM
    assert task.source_priority is None
    assert task.due_at == datetime(2026, 12, 5, tzinfo=UTC)
    assert task.source_updated_at == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert task.url == (
        "https://api-na.myconnectwise.net/v2025_1/services/system_io/router/openrecord.rails"
        "?recordType=ProjectHeaderFV&recid=3&companyName=acme"
    )
    assert task.source_data["project"] == {"id": 3, "name": "Office move"}
    assert task.source_data["phase"] == {"id": 57, "wbs_code": "2"}
    assert task.source_data["company"] == {"id": 7, "identifier": "AcmeCorp", "name": "Acme Corp"}
    assert task.source_data["board"] == {"id": 4, "name": "Professional Services"}
    assert task.source_data["assignment"] == ["project_work"]
    # A phase and a ticket with the same id are different tasks.
    ticket = raw(id=57)
    assert normalize(ticket).id != task.id


@pytest.mark.parametrize(
    ("status", "started", "expected"),
    [
        ({"name": "Open"}, False, TaskStatus.PENDING),
        ({"name": "Open"}, True, TaskStatus.IN_PROGRESS),
        ({"name": "In Progress"}, False, TaskStatus.IN_PROGRESS),
        (None, True, TaskStatus.IN_PROGRESS),
    ],
)
def test_a_phase_is_in_progress_by_status_or_once_started(
    status: Any, started: bool, expected: TaskStatus
) -> None:
    data = phase_raw(status=status)
    data["context"]["started"] = started
    assert normalize_phase(data).status is expected


def test_a_phase_without_deadline_is_due_at_its_scheduled_end() -> None:
    assert normalize_phase(phase_raw(deadlineDate=None)).due_at == datetime(
        2026, 11, 30, tzinfo=UTC
    )


def test_a_phase_without_project_context_still_makes_a_task() -> None:
    task = normalize_phase(phase_raw(context={}, description=None))
    assert task.title == "Phase #57"
    assert task.source_data["project"] == {"id": 3, "name": None}  # from `projectId`
    task = normalize_phase(phase_raw(context={}, projectId=None))
    assert task.url is None


def test_phases_and_tickets_are_not_mistaken_for_each_other() -> None:
    with pytest.raises(NormalizationError, match="unsupported entity"):
        normalize_ticket(phase_raw())
    with pytest.raises(NormalizationError, match="not a project phase"):
        normalize_phase(raw())
    with pytest.raises(NormalizationError):
        normalize_phase(phase_raw(_info={}))


def test_a_phase_removal_names_its_task() -> None:
    gone = removal(
        {
            "tenant_id": "t1",
            "user_id": "u1",
            "external_id": "57",
            "entity": "project_phase",
            "observed_at": "2026-11-22T10:00:00+00:00",
        }
    )
    assert (gone.source_type, gone.external_id) == (SourceType.PROJECT_PHASE, "57")


@given(
    description=json_values,
    status=json_values,
    deadline=json_values,
    scheduled_end=json_values,
    scheduled_start=json_values,
    wbs=json_values,
    project=json_values,
    started=json_values,
)
def test_normalising_a_phase_never_fails_on_odd_field_values(
    description: Any,
    status: Any,
    deadline: Any,
    scheduled_end: Any,
    scheduled_start: Any,
    wbs: Any,
    project: Any,
    started: Any,
) -> None:
    data = phase_raw(
        context={"project": project, "started": started},
        description=description,
        status=status,
        deadlineDate=deadline,
        scheduledEnd=scheduled_end,
        scheduledStart=scheduled_start,
        wbsCode=wbs,
    )
    first = normalize(data)
    assert first.source_type is SourceType.PROJECT_PHASE
    assert first.title
    assert normalize(data) == first  # idempotent and deterministic
