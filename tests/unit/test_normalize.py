from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectwise_sandbox.seed import Dataset, generate
from syntaskio_aggregator.normalize import (
    NormalizationError,
    normalize,
    normalize_phase,
    normalize_ticket,
    removal,
    ticket_due,
    ticket_priority,
    ticket_sla,
    ticket_status,
)
from syntaskio_common.task import SlaStage, SourceType, TaskPriority, TaskStatus, task_id


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


def test_a_closed_board_status_completes_the_ticket_before_closed_flag_follows() -> None:
    ticket = {"status": {"id": 6, "name": "Completed"}, "closedFlag": False}
    assert ticket_status(ticket, {"id": 6, "closedStatus": True}) is TaskStatus.COMPLETED
    assert ticket_status(ticket, {"id": 6, "closedStatus": False}) is TaskStatus.PENDING


@pytest.mark.parametrize(
    ("escalation", "name", "expected"),
    [
        ("Responded", "Waiting on Client", TaskStatus.IN_PROGRESS),
        ("ResolutionPlan", "Waiting on Client", TaskStatus.IN_PROGRESS),
        ("Resolved", "Awaiting sign-off", TaskStatus.IN_PROGRESS),  # open until closed
        ("NotResponded", "Waiting on Client", TaskStatus.PENDING),
        ("NoEscalation", "Waiting on Client", TaskStatus.PENDING),
        ("NotResponded", "In Progress", TaskStatus.IN_PROGRESS),  # silent: the name decides
        (None, "In Progress", TaskStatus.IN_PROGRESS),
    ],
)
def test_an_escalation_status_past_response_means_work_has_started(
    escalation: str | None, name: str, expected: TaskStatus
) -> None:
    ticket = {"status": {"id": 4, "name": name}}
    assert ticket_status(ticket, {"id": 4, "escalationStatus": escalation}) is expected


def test_the_boards_default_status_is_pending_whatever_its_name() -> None:
    ticket = {"status": {"id": 1, "name": "Assigned"}}
    assert ticket_status(ticket) is TaskStatus.IN_PROGRESS  # by name alone
    meta = {"id": 1, "defaultFlag": True, "escalationStatus": "Responded"}
    assert ticket_status(ticket, meta) is TaskStatus.PENDING
    assert ticket_status(ticket | {"closedFlag": True}, meta) is TaskStatus.COMPLETED


def test_status_metadata_about_another_status_is_ignored() -> None:
    ticket = {"status": {"id": 2, "name": "New"}}
    assert ticket_status(ticket, {"id": 7, "closedStatus": True}) is TaskStatus.PENDING
    # Without a name on the reference, the metadata's name still counts.
    assert ticket_status({"status": {"id": 2}}, {"id": 2, "name": "In Progress"}) is (
        TaskStatus.IN_PROGRESS
    )


@pytest.fixture(scope="module")
def sandbox() -> Dataset:
    return generate(seed=7, tickets=10, anchor=datetime(2026, 11, 20, tzinfo=UTC))


def test_the_sandbox_board_statuses_map_as_their_flags_say(sandbox: Dataset) -> None:
    for status in sandbox.statuses:
        ticket = {"status": {"id": status["id"], "name": status["name"]}, "closedFlag": False}
        mapped = ticket_status(ticket, status)
        if status["closedStatus"]:
            assert mapped is TaskStatus.COMPLETED, status
        elif status["defaultFlag"]:
            assert mapped is TaskStatus.PENDING, status
        else:
            assert mapped is ticket_status(ticket), status  # no escalation: by name


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


def test_a_priority_level_beats_its_name() -> None:
    ticket = {"priority": {"id": 1, "name": "Priority 1 - Emergency Response", "level": "Low"}}
    assert ticket_priority(ticket) is TaskPriority.LOW
    # "NotApplicable" is no level: the priority record's own level is next.
    ticket = {"priority": {"id": 1, "name": "Priority 1", "level": "NotApplicable"}}
    assert ticket_priority(ticket, {"id": 1, "level": "high"}) is TaskPriority.HIGH


@pytest.mark.parametrize(
    ("sort_order", "expected"),
    [
        (0, TaskPriority.URGENT),
        (1, TaskPriority.URGENT),
        (2, TaskPriority.HIGH),
        (3, TaskPriority.MEDIUM),
        (4, TaskPriority.LOW),
        (12, TaskPriority.LOW),
    ],
)
def test_without_a_level_the_priority_sort_order_ranks_it(
    sort_order: int, expected: TaskPriority
) -> None:
    ticket = {"priority": {"id": 9, "name": "Priority 5 - Next Time", "level": "NotApplicable"}}
    assert ticket_priority(ticket, {"id": 9, "sortOrder": sort_order}) is expected
    # The reference's `sort` stands in when there is no priority record.
    assert ticket_priority({"priority": ticket["priority"] | {"sort": sort_order}}) is expected


def test_odd_sort_orders_fall_back_to_the_priority_name() -> None:
    ticket = {"priority": {"id": 9, "name": "Priority 1 - Emergency Response"}}
    for odd in (-1, True, "2", 2.0, None):
        assert ticket_priority(ticket, {"id": 9, "sortOrder": odd}) is TaskPriority.URGENT


def test_sort_order_alone_reproduces_the_sandbox_priorities_levels(sandbox: Dataset) -> None:
    for priority in sandbox.priorities:
        ref = {"id": priority["id"], "name": "Renamed", "level": "NotApplicable"}
        mapped = ticket_priority({"priority": ref}, priority | {"level": "NotApplicable"})
        assert mapped.value == priority["level"].lower(), priority


def test_a_required_date_wins_over_the_schedule() -> None:
    schedule = [{"id": 1, "date_start": "2026-11-21T09:00:00Z", "date_end": None}]
    assert ticket_due({"requiredDate": "2026-12-01T17:00:00Z"}, schedule) == datetime(
        2026, 12, 1, 17, tzinfo=UTC
    )


def test_without_a_required_date_the_earliest_schedule_entry_sets_the_due_date() -> None:
    schedule: list[dict[str, Any]] = [
        {"id": 3, "date_start": "2026-11-25T09:00:00Z", "date_end": "2026-11-25T10:00:00Z"},
        {"id": 4, "date_start": None, "date_end": None},  # nothing to go by: skipped
        {"id": 5, "date_start": "2026-11-24T13:00:00+02:00", "date_end": "2026-11-24T15:00:00Z"},
        {"id": 6, "date_start": "not a date", "date_end": "2026-11-26T10:00:00Z"},
    ]
    assert ticket_due({"requiredDate": None}, schedule) == datetime(2026, 11, 24, 15, tzinfo=UTC)
    # An entry with a start and no end is due at its start.
    only_start = [{"id": 7, "date_start": "2026-11-23T08:00:00Z", "date_end": None}]
    assert ticket_due({}, only_start + schedule) == datetime(2026, 11, 23, 8, tzinfo=UTC)
    assert ticket_due({}, [schedule[1]]) is None
    assert ticket_due({}) is None


def test_a_ticket_event_uses_its_board_status_priority_and_schedule() -> None:
    data = raw(
        status={"id": 6, "name": "Completed"},
        priority={"id": 4, "name": "Custom SLA", "level": "NotApplicable"},
        requiredDate=None,
    )
    data["context"] = {
        "status": {"id": 6, "name": "Completed", "closedStatus": True, "sortOrder": 5},
        "priority": {"id": 4, "name": "Custom SLA", "sortOrder": 2},
    }
    data["assignment"] = {
        "reasons": ["schedule"],
        "schedule": [
            {"id": 12, "ticket_id": 4211, "date_start": "2026-11-26T09:00:00Z", "date_end": None},
            {
                "id": 11,
                "ticket_id": 4211,
                "date_start": "2026-11-25T09:00:00Z",
                "date_end": "2026-11-25T11:00:00Z",
            },
            "not an entry",
        ],
    }
    task = normalize(data)
    assert task.status is TaskStatus.COMPLETED
    assert task.priority is TaskPriority.HIGH
    assert task.due_at == datetime(2026, 11, 25, 11, tzinfo=UTC)
    assert task.source_data["assignment"] == ["schedule"]
    assert task.source_data["schedule"] == [
        {"id": 12, "date_start": "2026-11-26T09:00:00Z", "date_end": None},
        {"id": 11, "date_start": "2026-11-25T09:00:00Z", "date_end": "2026-11-25T11:00:00Z"},
    ]
    # Without context or schedule, the same ticket is judged by its own fields.
    bare = normalize(data | {"context": None, "assignment": None})
    assert (bare.status, bare.priority, bare.due_at) == (
        TaskStatus.PENDING,
        TaskPriority.MEDIUM,
        None,
    )
    assert bare.source_data["schedule"] == []


def test_identity_that_is_not_valid_unicode_is_refused() -> None:
    with pytest.raises(NormalizationError, match="Unicode"):
        normalize(raw(id="42\udc80"))
    data = raw()
    data["company_id"] = "acme\udc80"
    assert normalize(data).url is None  # no link rather than a crash


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


# Valid ISO timestamps in any UTC offset (ConnectWise's "Z" included), or anything else.
timestamps = (
    st.datetimes(
        timezones=st.builds(
            timezone,
            st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)),
        )
    ).map(lambda moment: moment.isoformat().replace("+00:00", "Z"))
    | json_values
)
# Board statuses and priorities (records or references) with their real fields, mostly
# with plausible values, sometimes not; or no record at all.
status_records = (
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.integers(1, 3) | json_values,
            "name": st.sampled_from(["New", "In Progress", "Waiting on Client"]) | json_values,
            "closedStatus": st.booleans() | json_values,
            "defaultFlag": st.booleans() | json_values,
            "escalationStatus": st.sampled_from(
                ["NotResponded", "Responded", "ResolutionPlan", "Resolved", "NoEscalation"]
            )
            | json_values,
            "sortOrder": st.integers() | json_values,
        },
    )
    | json_values
)
priority_records = (
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.integers(1, 3) | json_values,
            "name": st.sampled_from(["Priority 1 - Emergency Response", "Custom"]) | json_values,
            "level": st.sampled_from(["Urgent", "high", "Low", "NotApplicable"]) | json_values,
            "sortOrder": st.integers() | json_values,
            "sort": st.integers() | json_values,
        },
    )
    | json_values
)
schedule_entries = st.fixed_dictionaries(
    {},
    optional={
        "id": st.integers() | json_values,
        "ticket_id": json_values,
        "date_start": timestamps,
        "date_end": timestamps,
    },
)
assignments = (
    st.fixed_dictionaries(
        {},
        optional={
            "reasons": json_values,
            "schedule": st.lists(schedule_entries | json_values, max_size=4) | json_values,
        },
    )
    | json_values
)
contexts = (
    st.fixed_dictionaries(
        {},
        optional={
            "status": status_records,
            "priority": priority_records,
            "project": json_values,
            "started": json_values,
        },
    )
    | json_values
)


@given(
    summary=json_values,
    status=status_records,
    priority=priority_records,
    company=json_values,
    resources=json_values,
    required=timestamps,
    context=contexts,
    assignment=assignments,
)
def test_normalising_never_fails_on_odd_field_values(
    summary: Any,
    status: Any,
    priority: Any,
    company: Any,
    resources: Any,
    required: Any,
    context: Any,
    assignment: Any,
) -> None:
    record = raw(
        summary=summary,
        status=status,
        priority=priority,
        company=company,
        resources=resources,
        requiredDate=required,
    )
    record["context"], record["assignment"] = context, assignment
    first = normalize_ticket(record)
    assert normalize_ticket(record) == first  # idempotent and deterministic
    if isinstance(required, str) and (promised := ticket_due({"requiredDate": required})):
        assert first.due_at == promised  # a valid requiredDate always wins


# Identity may be missing, mistyped or not even valid Unicode (lone surrogates).
odd_text = st.text(st.characters(categories=["Cs", "Ll", "Nd"]), max_size=4)
odd_records = (
    st.fixed_dictionaries(
        {},
        optional={
            "id": st.integers() | odd_text | json_values,
            "_info": st.fixed_dictionaries({}, optional={"lastUpdated": timestamps}) | json_values,
            "status": status_records,
            "priority": priority_records,
            "requiredDate": timestamps,
            "projectId": json_values,
        },
    )
    | json_values
)


@given(
    overrides=st.fixed_dictionaries(
        {},
        optional={
            "tenant_id": odd_text | json_values,
            "user_id": odd_text | json_values,
            "integration_id": odd_text | json_values,
            "api_base_url": odd_text | json_values,
            "company_id": odd_text | json_values,
            "entity": st.sampled_from(["service_ticket", "project_ticket", "project_phase"])
            | json_values,
            "record": odd_records,
            "context": contexts,
            "assignment": assignments,
        },
    )
)
def test_normalising_anything_raises_nothing_but_normalization_error(
    overrides: dict[str, Any],
) -> None:
    data = raw() | overrides
    try:
        first = normalize(data)
    except NormalizationError:
        return
    assert normalize(data) == first  # idempotent and deterministic


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


SLA_TICKET: dict[str, Any] = {
    "escalationStartDateUTC": "2026-12-05T08:00:00Z",
    "respondMinutes": 60,
    "resPlanMinutes": 240,
    "resolveMinutes": 1440,
    "sla": {"id": 1, "name": "Standard SLA"},
    "isInSla": True,
}


def test_the_next_sla_target_is_the_first_step_not_done() -> None:
    fresh = ticket_sla(SLA_TICKET)
    assert fresh is not None
    assert (fresh.stage, fresh.due_at) == (SlaStage.RESPOND, datetime(2026, 12, 5, 9, tzinfo=UTC))
    assert fresh.resolve_by == datetime(2026, 12, 6, 8, tzinfo=UTC)
    assert (fresh.name, fresh.in_sla) == ("Standard SLA", True)
    responded = ticket_sla(SLA_TICKET | {"dateResponded": "2026-12-05T08:30:00Z"})
    assert responded is not None
    assert (responded.stage, responded.due_at) == (
        SlaStage.PLAN,
        datetime(2026, 12, 5, 12, tzinfo=UTC),
    )
    planned = ticket_sla(
        SLA_TICKET
        | {"dateResponded": "2026-12-05T08:30:00Z", "dateResplan": "2026-12-05T09:00:00Z"}
    )
    assert planned is not None
    assert planned.stage is SlaStage.RESOLVE


@pytest.mark.parametrize(
    "changes",
    [
        {"closedFlag": True},
        {"escalationStartDateUTC": None},
        {"escalationStartDateUTC": "yesterday"},
        {"dateResponded": "x", "dateResplan": "x", "dateResolved": "x"},
        {"respondMinutes": None, "resPlanMinutes": "soon", "resolveMinutes": -5},
    ],
)
def test_no_sla_target_without_a_clock_or_an_open_step(changes: dict[str, Any]) -> None:
    assert ticket_sla(SLA_TICKET | changes) is None


def test_a_step_without_a_target_is_skipped_and_a_verdict_must_be_a_boolean() -> None:
    found = ticket_sla(SLA_TICKET | {"respondMinutes": None, "isInSla": "yes"})
    assert found is not None
    assert (found.stage, found.respond_by, found.in_sla) == (SlaStage.PLAN, None, None)
