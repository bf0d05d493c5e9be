"""What "assigned to me" means, and the conditions that ask ConnectWise for it."""

from datetime import UTC, datetime
from typing import Any

from connectwise_sandbox.conditions import _parse
from syntaskio_common import events
from syntaskio_common.connectwise_events import RawRecordRemoved, RawRecordUpserted
from syntaskio_connector.assignment import (
    PATHS,
    TICKET_ENTITIES,
    Entity,
    IntegrationRef,
    ScheduleEntry,
    assigned_open_tickets,
    assignment,
    changed_tickets,
    fingerprint,
    open_phases,
    open_schedule_entry,
    open_tickets_of_projects,
    phase_assignment,
    phase_data,
    phase_fingerprint,
    phase_project,
    phase_started,
    phases_path,
    project_closed,
    project_context,
    projects_by_id,
    removed_event,
    ticket_data,
    upserted_event,
    worked_on_projects,
)

REF = IntegrationRef("i1", "t1", "u1", "atech", "https://cw.example/apis/3.0/", "acme", 3)


def ticket(**fields: Any) -> dict[str, Any]:
    return {
        "id": 7,
        "closedFlag": False,
        "status": {"id": 1, "name": "New"},
        "owner": {"identifier": "bjones"},
        "resources": "",
        "_info": {"lastUpdated": "2026-11-20T10:00:00Z"},
    } | fields


def entry(**fields: Any) -> dict[str, Any]:
    return {
        "id": 90,
        "objectId": 7,
        "type": {"identifier": "S"},
        "member": {"identifier": "atech"},
        "doneFlag": False,
        "dateStart": "2026-11-23T09:00:00Z",
    } | fields


def test_the_owner_resources_and_open_schedule_entries_make_a_ticket_mine() -> None:
    assert assignment(ticket(owner={"identifier": "atech"}), "atech", [], set()) is not None
    assert assignment(ticket(resources="bjones, atech"), "atech", [], set()).reasons == (
        "resource",
    )
    scheduled = ScheduleEntry(90, 7, "2026-11-23T09:00:00Z")
    mine = assignment(ticket(), "atech", [scheduled], set())
    assert mine is not None
    assert mine.reasons == ("schedule",)
    assert mine.schedule == (scheduled,)


def test_a_ticket_of_a_closed_project_is_not_open_work() -> None:
    owned = ticket(owner={"identifier": "atech"}, project={"id": 3, "name": "Office move"})
    assert assignment(owned, "atech", [], set(), closed_project_ids={3}) is None
    assert assignment(owned, "atech", [], set(), closed_project_ids={5}) is not None
    assert project_closed(project(closedFlag=True))
    assert not project_closed(project())
    assert not project_closed(None)  # out of sight is not known to be closed


def test_someone_elses_or_a_closed_ticket_is_not_mine() -> None:
    assert assignment(ticket(), "atech", [], set()) is None
    # `resources contains "atech"` also matches "atech2" upstream; the check is exact.
    assert assignment(ticket(resources="atech2"), "atech", [], set()) is None
    owned = {"owner": {"identifier": "atech"}}
    assert assignment(ticket(closedFlag=True, **owned), "atech", [], set()) is None
    # A status whose board marks it closed counts as closed before closedFlag follows.
    assert assignment(ticket(status={"id": 5}, **owned), "atech", [], {5}) is None
    # A schedule entry for another ticket assigns nothing.
    assert assignment(ticket(), "atech", [ScheduleEntry(1, 8)], set()) is None


def test_only_open_ticket_schedule_entries_of_the_member_count() -> None:
    assert open_schedule_entry(entry(), "atech") == ScheduleEntry(
        90, 7, "2026-11-23T09:00:00Z", None
    )
    assert open_schedule_entry(entry(doneFlag=True), "atech") is None
    assert open_schedule_entry(entry(type={"identifier": "C"}), "atech") is None
    assert open_schedule_entry(entry(member={"identifier": "bjones"}), "atech") is None
    assert open_schedule_entry(entry(objectId=None), "atech") is None


def test_the_fingerprint_follows_the_record_and_why_it_is_mine() -> None:
    owned = ticket(owner={"identifier": "atech"})
    base = fingerprint(owned, assignment(owned, "atech", [], set()))  # type: ignore[arg-type]
    assert base == fingerprint(owned, assignment(owned, "atech", [], set()))  # type: ignore[arg-type]
    newer = ticket(owner={"identifier": "atech"}, _info={"lastUpdated": "2026-11-21T00:00:00Z"})
    assert fingerprint(newer, assignment(newer, "atech", [], set())) != base  # type: ignore[arg-type]
    scheduled = assignment(owned, "atech", [ScheduleEntry(90, 7)], set())
    assert scheduled is not None
    assert fingerprint(owned, scheduled) != base


def test_conditions_ask_for_mine_and_quote_the_member() -> None:
    condition = str(assigned_open_tickets('x" or id > 0 or owner/identifier = "y', [3, 1]))
    assert condition == (
        'closedFlag = false and (owner/identifier = "x\\" or id > 0 or owner/identifier = \\"y"'
        ' or resources contains "x\\" or id > 0 or owner/identifier = \\"y" or id in (1, 3))'
    )
    _parse(condition)  # well-formed for ConnectWise's grammar
    since = datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert str(changed_tickets("atech", since, [7])) == (
        '_info/lastUpdated > [2026-11-20T10:00:00Z] and (owner/identifier = "atech"'
        ' or resources contains "atech" or id in (7))'
    )
    # Tickets whose schedule changed come back in the same listing, changed or not.
    named = str(changed_tickets("atech", since, [7], [9, 8]))
    assert named == (
        '(_info/lastUpdated > [2026-11-20T10:00:00Z] and (owner/identifier = "atech"'
        ' or resources contains "atech" or id in (7))) or id in (8, 9)'
    )
    _parse(named)
    reopened = str(open_tickets_of_projects("atech", [], [5, 3]))
    assert reopened.endswith("and project/id in (3, 5)")
    _parse(reopened)


def test_events_carry_the_generation_the_assignment_and_one_key_per_record() -> None:
    owned = ticket(owner={"identifier": "atech"})
    mine = assignment(owned, "atech", [], set())
    assert mine is not None
    version = fingerprint(owned, mine)
    seen = datetime(2026, 11, 21, 9, tzinfo=UTC)
    record = upserted_event(REF, Entity.PROJECT_TICKET, owned, mine, version, {}, seen)
    upserted = events.decode_event(record.headers, record.value)
    assert upserted.data["integration_generation"] == 3
    assert upserted.data["observed_at"] == "2026-11-21T09:00:00+00:00"
    assert upserted.data["entity"] == "project_ticket"
    assert upserted.data["assignment"] == {"reasons": ["owner"], "schedule": []}
    assert upserted.id == f"g3/project_ticket/7/{version}"
    removed = removed_event(REF, Entity.PROJECT_TICKET, "7", "v1", seen, "2026-11-20T10:00:00Z")
    assert removed.key == record.key
    gone = events.decode_event(removed.headers, removed.value)
    assert gone.data["last_updated"] == "2026-11-20T10:00:00Z"
    # What is published is what the documented contract says.
    RawRecordUpserted.model_validate(upserted.data)
    RawRecordRemoved.model_validate(gone.data)
    never_read = removed_event(REF, Entity.PROJECT_TICKET, "7", "v1", seen, None)
    assert "last_updated" not in events.decode_event(never_read.headers, never_read.value).data


def project(**fields: Any) -> dict[str, Any]:
    return {
        "id": 3,
        "name": "Office move",
        "closedFlag": False,
        "company": {"id": 7, "identifier": "AcmeCorp", "name": "Acme Corp"},
        "board": {"id": 4, "name": "Professional Services"},
        "status": {"id": 1, "name": "Open"},
    } | fields


def phase(**fields: Any) -> dict[str, Any]:
    return {
        "id": 57,
        "projectId": 3,
        "description": "Design",
        "status": {"id": 1, "name": "Open"},
        "scheduledStart": "2026-11-01T00:00:00Z",
        "_info": {"lastUpdated": "2026-11-20T10:00:00Z"},
    } | fields


def test_phases_are_their_own_entity_listed_per_project() -> None:
    assert TICKET_ENTITIES == (Entity.SERVICE_TICKET, Entity.PROJECT_TICKET)
    assert Entity.PROJECT_PHASE not in PATHS
    assert phases_path(3) == "project/projects/3/phases"
    # A phase's state is its status: the closed phase statuses are asked for first.
    assert str(open_phases([6, 4])) == "status/id not in (4, 6)"
    assert open_phases([]) is None
    _parse(str(open_phases([6, 4])))
    assert str(projects_by_id([5, 3])) == "id in (3, 5)"
    _parse(str(projects_by_id([5, 3])))


def test_a_project_tickets_project_is_kept_and_names_the_members_projects() -> None:
    kept = ticket_data(Entity.PROJECT_TICKET, ticket(project={"id": 3, "name": "Office move"}))
    assert kept == {"last_updated": "2026-11-20T10:00:00Z", "project_id": 3}
    assert ticket_data(Entity.SERVICE_TICKET, ticket()) == {"last_updated": "2026-11-20T10:00:00Z"}
    others = [{"project_id": 5}, {"project_id": 3}, {"project_id": None}, None, {}, kept]
    assert worked_on_projects(others) == {3, 5}
    assert worked_on_projects([{"project_id": True}, {"project_id": "3"}]) == set()


def test_an_open_phase_of_an_open_project_the_member_works_on_is_theirs() -> None:
    closed = {4}
    mine = phase_assignment(phase(), project(), {3}, closed)
    assert mine is not None
    assert mine.reasons == ("project_work",)
    done = phase(status={"id": 4, "name": "Completed"})
    assert phase_assignment(done, project(), {3}, closed) is None
    assert phase_assignment(phase(), project(closedFlag=True), {3}, closed) is None
    assert phase_assignment(phase(), None, {3}, closed) is None  # the project is gone
    assert phase_assignment(phase(), project(), {5}, closed) is None  # not the member's project
    another = phase(projectId=5)
    assert phase_assignment(another, project(), {3, 5}, closed) is None  # another's phase
    assert phase_assignment(phase(projectId=None), project(), {3}, closed) is not None


def test_the_phase_fingerprint_follows_the_phase_its_project_and_its_start() -> None:
    mine = phase_assignment(phase(), project(), {3}, set())
    assert mine is not None
    before = datetime(2026, 10, 1, tzinfo=UTC)
    context = {"project": project_context(project()), "started": phase_started(phase(), before)}
    assert context["started"] is False
    assert phase_started(phase(), datetime(2026, 11, 1, tzinfo=UTC)) is True
    assert phase_started(phase(scheduledStart=None), datetime(2030, 1, 1, tzinfo=UTC)) is False
    base = phase_fingerprint(phase(), mine, context)
    assert base == phase_fingerprint(phase(), mine, dict(context))
    newer = phase(_info={"lastUpdated": "2026-11-21T00:00:00Z"})
    assert phase_fingerprint(newer, mine, context) != base
    renamed = {**context, "project": project_context(project(name="HQ move"))}
    assert phase_fingerprint(phase(), mine, renamed) != base
    assert phase_fingerprint(phase(), mine, {**context, "started": True}) != base
    # What the project says beyond the task's context does not matter.
    assert project_context(project(manager={"identifier": "bjones"})) == context["project"]
    assert phase_project(phase_data(phase(), 3)) == 3
    assert phase_project(None) is None


def test_phase_events_carry_the_project_in_their_context() -> None:
    mine = phase_assignment(phase(), project(), {3}, set())
    assert mine is not None
    context = {"project": project_context(project()), "started": True}
    version = phase_fingerprint(phase(), mine, context)
    now = datetime.now(UTC)
    record = upserted_event(REF, Entity.PROJECT_PHASE, phase(), mine, version, context, now)
    upserted = events.decode_event(record.headers, record.value)
    assert upserted.subject == "project_phase/57"
    assert upserted.data["context"]["project"]["name"] == "Office move"
    assert upserted.data["assignment"] == {"reasons": ["project_work"], "schedule": []}
    removed = removed_event(REF, Entity.PROJECT_PHASE, "57", version, now, None)
    RawRecordUpserted.model_validate(upserted.data)
    RawRecordRemoved.model_validate(events.decode_event(removed.headers, removed.value).data)
    assert removed.key == record.key == b"i1/project_phase/57"
