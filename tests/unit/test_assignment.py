"""What "assigned to me" means, and the conditions that ask ConnectWise for it."""

from datetime import UTC, datetime
from typing import Any

import pytest

from connectwise_sandbox.conditions import _parse
from syntaskio_common import events
from syntaskio_common.connectwise_events import RawRecordRemoved, RawRecordUpserted
from syntaskio_connector.assignment import (
    PATHS,
    TICKET_ENTITIES,
    Entity,
    IntegrationRef,
    Member,
    ScheduleEntry,
    assigned_open_tickets,
    assignment,
    changed_tickets,
    fingerprint,
    open_phases,
    open_schedule_entries,
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
    project_workers,
    projects_by_id,
    removed_event,
    team_assignment,
    ticket_data,
    upserted_event,
)

REF = IntegrationRef("i1", "t1", "u1", "atech", "https://cw.example/apis/3.0/", "acme", 3)
ATECH = Member("atech", "u1")
BJONES = Member("bjones", "u2")
TEAM = IntegrationRef(
    "i2", "t1", "", "syntaskio-api", "https://cw.example/apis/3.0/", "acme", 1, (ATECH, BJONES)
)


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
    assert open_schedule_entry(entry(), ["atech"]) == ScheduleEntry(
        90, 7, "2026-11-23T09:00:00Z", None, "atech"
    )
    assert open_schedule_entry(entry(doneFlag=True), ["atech"]) is None
    assert open_schedule_entry(entry(type={"identifier": "C"}), ["atech"]) is None
    assert open_schedule_entry(entry(member={"identifier": "bjones"}), ["atech"]) is None
    assert open_schedule_entry(entry(member={"identifier": "atec"}), ["atech"]) is None
    assert open_schedule_entry(entry(objectId=None), ["atech"]) is None
    # A team's entries: each names its member, and assigns only that member.
    theirs = open_schedule_entry(entry(member={"identifier": "bjones"}), ["atech", "bjones"])
    assert theirs is not None
    assert theirs.member == "bjones"
    assert assignment(ticket(owner={"identifier": "x"}), "atech", [theirs], set()) is None
    # One string is not a team (it would be a team of letters).
    with pytest.raises(TypeError):
        open_schedule_entry(entry(), "atech")
    # Entries kept before teams existed name no member: a personal connection's own.
    legacy = ScheduleEntry.from_data({"id": 90, "ticket_id": 7})
    assert legacy.member == ""
    assert assignment(ticket(), "atech", [legacy], set()) is not None


def test_the_fingerprint_follows_the_record_and_to_whom_and_why_it_is_assigned() -> None:
    owned = ticket(owner={"identifier": "atech"})
    base = fingerprint(owned, team_assignment(owned, [ATECH], [], set()))
    assert base == fingerprint(owned, team_assignment(owned, [ATECH], [], set()))
    newer = ticket(owner={"identifier": "atech"}, _info={"lastUpdated": "2026-11-21T00:00:00Z"})
    assert fingerprint(newer, team_assignment(newer, [ATECH], [], set())) != base
    scheduled = team_assignment(owned, [ATECH], [ScheduleEntry(90, 7, member="atech")], set())
    assert fingerprint(owned, scheduled) != base
    shared = ticket(owner={"identifier": "atech"}, resources="bjones")
    alone = fingerprint(shared, team_assignment(shared, [ATECH], [], set()))
    assert fingerprint(shared, team_assignment(shared, [ATECH, BJONES], [], set())) != alone
    # The same user mapped to another member is another assignment.
    remapped = [Member("atech", "u2")]
    assert fingerprint(owned, team_assignment(owned, remapped, [], set())) != base


def test_a_ticket_is_classified_for_every_member_of_the_team() -> None:
    shared = ticket(owner={"identifier": "atech"}, resources="bjones, ccarter")
    assigned = team_assignment(shared, [BJONES, ATECH, Member("dlee", "u4")], [], set())
    assert list(assigned) == [ATECH, BJONES]
    assert assigned[ATECH].reasons == ("owner",)
    assert assigned[BJONES].reasons == ("resource",)
    scheduled = ScheduleEntry(90, 7, member="bjones")
    only_bjones = team_assignment(ticket(), [ATECH, BJONES], [scheduled], set())
    assert list(only_bjones) == [BJONES]
    assert only_bjones[BJONES].schedule == (scheduled,)
    assert team_assignment(shared, [ATECH, BJONES], [], {1}) == {}  # closed for everyone
    assert team_assignment(shared, [], [], set()) == {}


def test_conditions_ask_for_mine_and_quote_the_member() -> None:
    condition = str(assigned_open_tickets(['x" or id > 0 or owner/identifier = "y'], [3, 1]))
    assert condition == (
        'closedFlag = false and (owner/identifier = "x\\" or id > 0 or owner/identifier = \\"y"'
        ' or resources contains "x\\" or id > 0 or owner/identifier = \\"y" or id in (1, 3))'
    )
    _parse(condition)  # well-formed for ConnectWise's grammar
    since = datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert str(changed_tickets(["atech"], since, [7])) == (
        '_info/lastUpdated > [2026-11-20T10:00:00Z] and (owner/identifier = "atech"'
        ' or resources contains "atech" or id in (7))'
    )
    # Tickets whose schedule changed come back in the same listing, changed or not.
    named = str(changed_tickets(["atech"], since, [7], [9, 8]))
    assert named == (
        '(_info/lastUpdated > [2026-11-20T10:00:00Z] and (owner/identifier = "atech"'
        ' or resources contains "atech" or id in (7))) or id in (8, 9)'
    )
    _parse(named)
    reopened = str(open_tickets_of_projects(["atech"], [], [5, 3]))
    assert reopened.endswith("and project/id in (3, 5)")
    _parse(reopened)


def test_one_condition_asks_for_the_whole_teams_work() -> None:
    team = ["bjones", "atech"]
    listing = str(assigned_open_tickets(team, [4]))
    assert listing == (
        'closedFlag = false and (owner/identifier in ("atech", "bjones")'
        ' or resources contains "atech" or resources contains "bjones" or id in (4))'
    )
    _parse(listing)
    since = datetime(2026, 11, 20, 10, tzinfo=UTC)
    _parse(str(changed_tickets(team, since, [7], [9])))
    schedule = str(open_schedule_entries(team))
    assert 'member/identifier in ("atech", "bjones")' in schedule
    _parse(schedule)
    assert 'member/identifier = "atech"' in str(open_schedule_entries(["atech"]))
    with pytest.raises(TypeError):
        assigned_open_tickets("atech")


def test_events_carry_the_generation_the_assignment_and_one_key_per_record() -> None:
    owned = ticket(owner={"identifier": "atech"})
    assigned = team_assignment(owned, REF.members, [], set())
    mine = assigned[ATECH]
    version = fingerprint(owned, assigned)
    seen = datetime(2026, 11, 21, 9, tzinfo=UTC)
    record = upserted_event(REF, ATECH, Entity.PROJECT_TICKET, owned, mine, version, {}, seen)
    upserted = events.decode_event(record.headers, record.value)
    assert upserted.data["integration_generation"] == 3
    assert upserted.data["observed_at"] == "2026-11-21T09:00:00+00:00"
    assert upserted.data["entity"] == "project_ticket"
    assert upserted.data["assignment"] == {"reasons": ["owner"], "schedule": []}
    assert upserted.id == f"g3/u1/project_ticket/7/{version}"
    assert (upserted.data["user_id"], upserted.data["member_identifier"]) == ("u1", "atech")
    removed = removed_event(
        REF, "u1", Entity.PROJECT_TICKET, "7", "v1", seen, "2026-11-20T10:00:00Z"
    )
    assert removed.key == record.key
    gone = events.decode_event(removed.headers, removed.value)
    assert gone.data["last_updated"] == "2026-11-20T10:00:00Z"
    # What is published is what the documented contract says.
    RawRecordUpserted.model_validate(upserted.data)
    RawRecordRemoved.model_validate(gone.data)
    never_read = removed_event(REF, "u1", Entity.PROJECT_TICKET, "7", "v1", seen, None)
    assert "last_updated" not in events.decode_event(never_read.headers, never_read.value).data


def test_a_teams_record_is_one_event_per_member_each_their_own_task() -> None:
    shared = ticket(owner={"identifier": "atech"}, resources="bjones")
    assigned = team_assignment(shared, TEAM.members, [], set())
    version = fingerprint(shared, assigned)
    seen = datetime(2026, 11, 21, 9, tzinfo=UTC)
    published = [
        events.decode_event(r.headers, r.value)
        for r in (
            upserted_event(TEAM, m, Entity.SERVICE_TICKET, shared, why, version, {}, seen)
            for m, why in assigned.items()
        )
    ]
    assert [(e.data["user_id"], e.data["member_identifier"]) for e in published] == [
        ("u1", "atech"),
        ("u2", "bjones"),
    ]
    assert len({e.id for e in published}) == 2  # the aggregator dedupes by id
    assert published[1].data["assignment"]["reasons"] == ["resource"]
    # A user no longer mapped is still told the record left them.
    unmapped = removed_event(TEAM, "u9", Entity.SERVICE_TICKET, "7", version, seen, None)
    gone = events.decode_event(unmapped.headers, unmapped.value).data
    assert (gone["user_id"], gone["member_identifier"]) == ("u9", None)
    RawRecordRemoved.model_validate(gone)


def test_whom_a_tracked_record_was_published_for() -> None:
    assert REF.users_of({"last_updated": "x"}) == {"u1"}  # kept before teams existed
    assert TEAM.users_of({"last_updated": "x"}) == set()
    assert TEAM.users_of({"users": ["u2", "u1"]}) == {"u1", "u2"}
    assert REF.members == (ATECH,)
    assert TEAM.member_for("u2") == BJONES
    assert TEAM.member_for("u1x") is None
    assert REF.team_digest != TEAM.team_digest
    reordered = IntegrationRef(
        "i2", "t1", "", "syntaskio-api", "https://cw.example/apis/3.0/", "acme", 1, (BJONES, ATECH)
    )
    assert reordered.team_digest == TEAM.team_digest


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


def test_a_project_tickets_project_is_kept_and_names_who_works_on_which_project() -> None:
    moving = ticket(project={"id": 3, "name": "Office move"})
    kept = ticket_data(Entity.PROJECT_TICKET, moving, ["u2", "u1"])
    assert kept == {"last_updated": "2026-11-20T10:00:00Z", "users": ["u1", "u2"], "project_id": 3}
    assert ticket_data(Entity.SERVICE_TICKET, ticket(), ["u1"]) == {
        "last_updated": "2026-11-20T10:00:00Z",
        "users": ["u1"],
    }
    others = [{"project_id": 5}, {"project_id": 3}, {"project_id": None}, None, {}]
    assert project_workers(REF, others) == {3: {"u1"}, 5: {"u1"}}
    assert project_workers(TEAM, [*others, kept, {"project_id": 5, "users": ["u2"]}]) == {
        3: {"u1", "u2"},
        5: {"u2"},
    }
    assert project_workers(REF, [{"project_id": True}, {"project_id": "3"}]) == {}


def test_an_open_phase_of_an_open_project_is_its_workers() -> None:
    closed = {4}
    assigned = phase_assignment(phase(), project(), [BJONES, ATECH], closed)
    assert list(assigned) == [ATECH, BJONES]
    assert assigned[ATECH].reasons == ("project_work",)
    done = phase(status={"id": 4, "name": "Completed"})
    assert phase_assignment(done, project(), [ATECH], closed) == {}
    assert phase_assignment(phase(), project(closedFlag=True), [ATECH], closed) == {}
    assert phase_assignment(phase(), None, [ATECH], closed) == {}  # the project is gone
    assert phase_assignment(phase(), project(), [], closed) == {}  # nobody works on it
    another = phase(projectId=5)
    assert phase_assignment(another, project(), [ATECH], closed) == {}  # another's phase
    assert phase_assignment(phase(projectId=None), project(), [ATECH], closed) != {}


def test_the_phase_fingerprint_follows_the_phase_its_project_and_its_start() -> None:
    mine = phase_assignment(phase(), project(), [ATECH], set())
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
    both = phase_assignment(phase(), project(), [ATECH, BJONES], set())
    assert phase_fingerprint(phase(), both, context) != base
    # What the project says beyond the task's context does not matter.
    assert project_context(project(manager={"identifier": "bjones"})) == context["project"]
    assert phase_project(phase_data(phase(), 3, ["u1"])) == 3
    assert phase_project(None) is None


def test_phase_events_carry_the_project_in_their_context() -> None:
    assigned = phase_assignment(phase(), project(), [ATECH], set())
    context = {"project": project_context(project()), "started": True}
    version = phase_fingerprint(phase(), assigned, context)
    now = datetime.now(UTC)
    mine = assigned[ATECH]
    record = upserted_event(REF, ATECH, Entity.PROJECT_PHASE, phase(), mine, version, context, now)
    upserted = events.decode_event(record.headers, record.value)
    assert upserted.subject == "project_phase/57"
    assert upserted.data["context"]["project"]["name"] == "Office move"
    assert upserted.data["assignment"] == {"reasons": ["project_work"], "schedule": []}
    removed = removed_event(REF, "u1", Entity.PROJECT_PHASE, "57", version, now, None)
    RawRecordUpserted.model_validate(upserted.data)
    RawRecordRemoved.model_validate(events.decode_event(removed.headers, removed.value).data)
    assert removed.key == record.key == b"i1/project_phase/57"
