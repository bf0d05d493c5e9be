"""Projects, phases, phase statuses, team members and project tickets: their shapes, the
seeded facts tests may rely on (asked from the seed helpers, not hard-coded), and the
admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectwise_sandbox.contract import contract
from connectwise_sandbox.project_seed import FIRST_PROJECT_TICKET_ID, project_counts
from connectwise_sandbox.seed import assignments, generate
from connectwise_sandbox.state import SandboxState

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)  # the conftest settings' anchor
FORWARD_ONLY = {"pagination-type": "forward-only"}
ATECH_OPEN = 'closedFlag = false and (owner/identifier = "atech" or resources contains "atech")'


async def get_json(cw: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> Any:
    response = await cw.get(url, params=params or None, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def closed_phase_status_ids(
    cw: httpx.AsyncClient, api: str, headers: dict[str, str]
) -> set[int]:
    """What a client does to tell open phases: ask the phase statuses."""
    statuses = await get_json(cw, f"{api}/project/phaseStatuses", headers)
    return {s["id"] for s in statuses if s["closedFlag"]}


async def test_phase_statuses_are_a_collection_with_closed_flags(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    statuses = await get_json(cw, f"{api}/project/phaseStatuses", atech)
    assert [(s["name"], s["closedFlag"]) for s in statuses] == [
        ("Open", False),
        ("In Progress", False),
        ("Completed", True),
        ("Cancelled", True),
    ]
    assert await get_json(cw, f"{api}/project/phaseStatuses/count", atech) == {"count": 4}
    closed = await get_json(cw, f"{api}/project/phaseStatuses", atech, conditions="closedFlag=true")
    assert [s["name"] for s in closed] == ["Completed", "Cancelled"]
    assert await get_json(cw, f"{api}/project/phaseStatuses/3", atech) == statuses[2]
    missing = await cw.get(f"{api}/project/phaseStatuses/99", headers=atech)
    assert missing.status_code == 404


async def test_projects_some_open_some_closed(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    projects = await get_json(cw, f"{api}/project/projects", atech, pageSize=1000)
    assert len(projects) == project_counts(300)[0] == 15
    closed = [p for p in projects if p["closedFlag"]]
    assert 0 < len(closed) < len(projects)
    statuses = {s["id"]: s for s in await get_json(cw, f"{api}/project/statuses", atech)}
    companies = {c["id"]: c for c in cw_state.store.companies}
    boards = {b["id"]: b for b in cw_state.store.boards}
    for project in projects:
        assert project["closedFlag"] is statuses[project["status"]["id"]]["closedFlag"]
        assert project["status"]["name"] == statuses[project["status"]["id"]]["name"]
        assert project["company"]["identifier"] == companies[project["company"]["id"]]["identifier"]
        assert boards[project["board"]["id"]]["projectFlag"] is True
        assert set(project["manager"]) == {"id", "identifier", "name"}
        assert project["estimatedStart"] < project["estimatedEnd"]
        assert set(project["_info"]) >= {"lastUpdated", "dateEntered"}
    count = await get_json(
        cw, f"{api}/project/projects/count", atech, conditions="closedFlag = true"
    )
    assert count == {"count": len(closed)}
    one = await get_json(cw, f"{api}/project/projects/{projects[2]['id']}", atech)
    assert one == projects[2]
    missing = await cw.get(f"{api}/project/projects/9999", headers=atech)
    assert missing.status_code == 404
    assert missing.json() == {"code": "NotFound", "message": "Project ID 9999 not found"}


async def test_phases_belong_to_their_project_in_wbs_order(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    projects = await get_json(cw, f"{api}/project/projects", atech, pageSize=1000)
    closed_ids = await closed_phase_status_ids(cw, api, atech)
    statuses = {
        s["id"]: s["name"] for s in await get_json(cw, f"{api}/project/phaseStatuses", atech)
    }
    for project in projects:
        url = f"{api}/project/projects/{project['id']}/phases"
        phases = await get_json(cw, url, atech)
        assert len(phases) >= 3
        assert [p["wbsCode"] for p in phases] == [str(n) for n in range(1, len(phases) + 1)]
        assert {p["projectId"] for p in phases} == {project["id"]}
        for phase in phases:
            assert phase["scheduledStart"] < phase["scheduledEnd"] == phase["deadlineDate"]
            assert set(phase["status"]) == {"id", "name"}
            assert statuses[phase["status"]["id"]] == phase["status"]["name"]
            assert "closedFlag" not in phase  # ProjectPhase documents none
            assert "lastUpdated" in phase["_info"]
        if project["closedFlag"]:
            assert all(p["status"]["id"] in closed_ids for p in phases)
        else:
            assert any(p["status"]["id"] not in closed_ids for p in phases)
        assert await get_json(cw, f"{url}/count", atech) == {"count": len(phases)}
        assert await get_json(cw, f"{url}/{phases[0]['id']}", atech) == phases[0]
    other = projects[1]["id"]
    first_phase_of_first = (
        await get_json(cw, f"{api}/project/projects/{projects[0]['id']}/phases", atech)
    )[0]["id"]
    wrong = await cw.get(
        f"{api}/project/projects/{other}/phases/{first_phase_of_first}", headers=atech
    )
    assert wrong.status_code == 404
    assert (await cw.get(f"{api}/project/projects/9999/phases", headers=atech)).status_code == 404


async def test_team_members_tell_which_projects_a_member_works_on(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    expected = assignments(generate(seed=42, tickets=300, anchor=ANCHOR), "atech").projects
    projects = await get_json(cw, f"{api}/project/projects", atech, pageSize=1000)
    working_on: set[int] = set()
    for project in projects:
        url = f"{api}/project/projects/{project['id']}/teamMembers"
        team = await get_json(cw, url, atech)
        assert team, "every project has at least its manager"
        assert project["manager"]["identifier"] in {m["member"]["identifier"] for m in team}
        assert all(set(m["member"]) == {"id", "identifier", "name"} for m in team)
        assert all(m["projectRole"]["name"] for m in team)
        mine = await get_json(cw, url, atech, conditions='member/identifier = "atech"')
        if mine:
            working_on.add(project["id"])
    assert working_on == expected
    assert 0 < len(working_on) < len(projects)
    # Everyone on a ticket of a project is on its team.
    for ticket in cw_state.store.project_tickets():
        if ticket.get("owner", {}).get("identifier") == "atech":
            assert ticket["project"]["id"] in working_on


async def test_project_tickets_have_the_service_shape_plus_project_fields(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    tickets = await get_json(cw, f"{api}/project/tickets", atech, pageSize=1000)
    assert len(tickets) == project_counts(300)[1] == 60
    service_fields = set(contract().model("Ticket").fields)
    project_fields = set(contract().model("ProjectTicket").fields)
    projects = {p["id"]: p for p in cw_state.store.projects()}
    statuses = {s["id"]: s for s in cw_state.store.statuses}
    for ticket in tickets:
        assert set(ticket) <= project_fields
        # ProjectTicket documents no recordType, severity, impact or hasChildTicket.
        assert not {"recordType", "severity", "impact", "hasChildTicket"} & set(ticket)
        project = projects[ticket["project"]["id"]]
        assert ticket["project"] == {"id": project["id"], "name": project["name"]}
        assert ticket["board"] == project["board"]
        assert ticket["company"] == project["company"]
        phase_ids = {p["id"] for p in cw_state.store.phases_of(project["id"])}
        assert ticket["phase"]["id"] in phase_ids
        phase = next(p for p in cw_state.store.phases if p["id"] == ticket["phase"]["id"])
        assert ticket["wbsCode"].startswith(phase["wbsCode"] + ".")
        status = statuses[ticket["status"]["id"]]
        assert status["board"]["id"] == ticket["board"]["id"]
        assert ticket["closedFlag"] is status["closedStatus"]
        assert set(ticket) - service_fields == {"project", "phase", "wbsCode"}
    assert any(t["closedFlag"] for t in tickets)
    assert any(not t["closedFlag"] for t in tickets)


async def test_project_ticket_ids_never_collide_with_service_tickets(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    service_ids = {t["id"] for t in cw_state.store.tickets()}
    project_ids = {t["id"] for t in cw_state.store.project_tickets()}
    assert min(project_ids) == FIRST_PROJECT_TICKET_ID > max(service_ids)
    # Separate collections: neither endpoint answers for the other kind.
    assert (await cw.get(f"{api}/service/tickets/200001", headers=atech)).status_code == 404
    assert (await cw.get(f"{api}/project/tickets/1001", headers=atech)).status_code == 404
    assert await get_json(cw, f"{api}/service/tickets/count", atech) == {"count": 300}
    listed = await get_json(cw, f"{api}/service/tickets", atech, pageSize=1000, fields="id")
    assert {row["id"] for row in listed} == service_ids
    refused = await cw.get(
        f"{api}/service/tickets", params={"conditions": "project/id = 1"}, headers=atech
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "project/id"


async def test_atechs_project_tickets_match_the_seed_helpers(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    facts = assignments(generate(seed=42, tickets=300, anchor=ANCHOR), "atech")
    rows = await get_json(
        cw, f"{api}/project/tickets", atech, conditions=ATECH_OPEN, pageSize=1000, fields="id,owner"
    )
    assert {row["id"] for row in rows} == facts.project
    owned = {row["id"] for row in rows if row.get("owner", {}).get("identifier") == "atech"}
    assert owned == facts.project_owned
    assert len(facts.project_owned) >= 5
    assert len(facts.project - facts.project_owned) >= 5  # some only as a resource
    closed_owned = await get_json(
        cw,
        f"{api}/project/tickets/count",
        atech,
        conditions='closedFlag = true and owner/identifier = "atech"',
    )
    assert closed_owned["count"] >= 5


async def test_project_ticket_search_count_and_forward_only_paging(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    searched = await cw.post(
        f"{api}/project/tickets/search",
        params={"pageSize": 1000},
        json={"conditions": "project/id = 1"},
        headers=atech,
    )
    assert searched.status_code == 200
    expected = [t["id"] for t in cw_state.store.project_tickets() if t["project"]["id"] == 1]
    assert [row["id"] for row in searched.json()] == expected
    assert {row["project"]["id"] for row in searched.json()} <= {1}
    count = await get_json(cw, f"{api}/project/tickets/count", atech, conditions="project/id = 1")
    assert count == {"count": len(expected)}
    seen: list[int] = []
    url: str | None = f"{api}/project/tickets?pageSize=7&fields=id"
    while url is not None:
        response = await cw.get(url, headers=atech | FORWARD_ONLY)
        seen += [row["id"] for row in response.json()]
        link = response.headers.get("Link")
        assert link is None or ('rel="next"' in link and "pageId=" in link)
        url = link.split(">")[0].lstrip("<") if link else None
    assert seen == [t["id"] for t in cw_state.store.project_tickets()]


async def test_project_boards_and_their_statuses(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    boards = await get_json(cw, f"{api}/service/boards", atech, conditions="projectFlag = true")
    assert {b["name"] for b in boards} == {"Professional Services", "Infrastructure Projects"}
    service = await get_json(cw, f"{api}/service/boards", atech, conditions="projectFlag = false")
    assert {b["name"] for b in service} >= {"Service Desk", "Projects"}
    for board in boards:
        statuses = await get_json(cw, f"{api}/service/boards/{board['id']}/statuses", atech)
        assert any(s["closedStatus"] for s in statuses)
        assert [s["sortOrder"] for s in statuses if s["defaultFlag"]] == [0]


async def test_admin_project_ticket_lifecycle(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    project = next(p for p in cw_state.store.projects() if not p["closedFlag"])
    phases = cw_state.store.phases_of(project["id"])
    created = await cw.post(
        "/_sandbox/project-tickets",
        json={"summary": "Label patch panel", "project": project["id"], "owner": "atech"},
    )
    assert created.status_code == 201, created.text
    ticket = created.json()
    assert ticket["id"] == FIRST_PROJECT_TICKET_ID + 60
    assert "recordType" not in ticket
    assert ticket["board"] == project["board"]
    assert ticket["company"] == project["company"]
    first_open = next(p for p in phases if not cw_state.store.phase_closed(p))
    assert ticket["phase"] == {"id": first_open["id"], "name": first_open["description"]}
    assert ticket["wbsCode"].startswith(first_open["wbsCode"] + ".")
    assert ticket["closedFlag"] is False
    read = await get_json(cw, f"{api}/project/tickets/{ticket['id']}", atech)
    assert read == ticket
    notes = await get_json(cw, f"{api}/project/tickets/{ticket['id']}/notes", atech)
    assert notes[0]["text"] == "Label patch panel"

    other_phase = phases[-1]
    moved = await cw.patch(
        f"/_sandbox/project-tickets/{ticket['id']}",
        json={"phase": other_phase["id"], "owner": "bjones", "resources": "bjones, atech"},
    )
    assert moved.status_code == 200
    assert moved.json()["phase"]["id"] == other_phase["id"]
    assert moved.json()["owner"]["identifier"] == "bjones"
    assert moved.json()["_info"]["lastUpdated"] > ticket["_info"]["lastUpdated"]

    closed = (await cw.post(f"/_sandbox/project-tickets/{ticket['id']}/close")).json()
    assert closed["closedFlag"] is True
    # The service ticket sequence is untouched by project tickets.
    service = (await cw.post("/_sandbox/tickets", json={"summary": "x"})).json()
    assert service["id"] == 1301
    assert (await cw.delete(f"/_sandbox/project-tickets/{ticket['id']}")).status_code == 204
    gone = await cw.get(f"{api}/project/tickets/{ticket['id']}", headers=atech)
    assert gone.status_code == 404
    assert (await cw.delete(f"/_sandbox/project-tickets/{ticket['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"summary": "x"}, 422),  # no project
        ({"summary": "x", "project": 9999}, 400),
        ({"summary": "x", "project": 1, "phase": 9999}, 400),
        ({"summary": "x", "project": 1, "board": "Service Desk"}, 400),
        ({"summary": "x", "project": 1, "company": "AcmeCorp"}, 400),
        ({"summary": "x", "project": 1, "status": "Monitoring"}, 400),
        ({"summary": "x", "project": 1, "owner": "nobody"}, 400),
    ],
)
async def test_bad_project_ticket_input_is_refused(
    cw: httpx.AsyncClient, cw_state: SandboxState, body: dict[str, Any], status: int
) -> None:
    response = await cw.post("/_sandbox/project-tickets", json=body)
    assert response.status_code == status, response.text
    assert len(cw_state.store.project_tickets()) == 60


async def test_admin_changes_a_project(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    before = await get_json(cw, f"{api}/project/projects/1", atech)
    assert before["closedFlag"] is False
    changed = await cw.patch(
        "/_sandbox/projects/1", json={"status": "Closed", "manager": "bjones", "name": "Renamed"}
    )
    assert changed.status_code == 200
    after = await get_json(cw, f"{api}/project/projects/1", atech)
    assert after == changed.json()
    assert (after["closedFlag"], after["status"]["name"]) == (True, "Closed")
    assert after["manager"]["identifier"] == "bjones"
    assert after["name"] == "Renamed"
    assert after["_info"]["lastUpdated"] > before["_info"]["lastUpdated"]
    reopened = (await cw.patch("/_sandbox/projects/1", json={"status": "Open"})).json()
    assert reopened["closedFlag"] is False
    assert (await cw.patch("/_sandbox/projects/1", json={"status": "Nope"})).status_code == 400
    assert (await cw.patch("/_sandbox/projects/9999", json={"name": "x"})).status_code == 404


async def test_admin_closes_and_renames_a_phase(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    project = next(p for p in cw_state.store.projects() if not p["closedFlag"])
    url = f"{api}/project/projects/{project['id']}/phases"
    closed_ids = await closed_phase_status_ids(cw, api, atech)
    phase = next(p for p in await get_json(cw, url, atech) if p["status"]["id"] not in closed_ids)
    changed = await cw.patch(
        f"/_sandbox/phases/{phase['id']}", json={"status": "Completed", "description": "Wrap-up"}
    )
    assert changed.status_code == 200, changed.text
    after = await get_json(cw, f"{url}/{phase['id']}", atech)
    assert after == changed.json()
    assert after["status"] == {"id": 3, "name": "Completed"}
    assert after["status"]["id"] in closed_ids
    assert after["description"] == "Wrap-up"
    assert after["_info"]["lastUpdated"] > phase["_info"]["lastUpdated"]
    # An open-phase listing (by phase status) no longer has it; the rest is as it was.
    open_ids = ", ".join(str(n) for n in sorted({1, 2, 3, 4} - closed_ids))
    still_open = await get_json(cw, url, atech, conditions=f"status/id in ({open_ids})")
    assert phase["id"] not in {p["id"] for p in still_open}
    others = [p for p in cw_state.store.phases if p["id"] != phase["id"]]
    assert len(others) == len(cw_state.store.phases) - 1
    cancelled = await cw.patch(f"/_sandbox/phases/{phase['id']}", json={"status": "cancelled"})
    assert cancelled.json()["status"] == {"id": 4, "name": "Cancelled"}
    reopened = (await cw.patch(f"/_sandbox/phases/{phase['id']}", json={"status": "Open"})).json()
    assert reopened["status"] == {"id": 1, "name": "Open"}
    for body, code in (({"status": "Nope"}, 400), ({"closedFlag": True}, 422)):
        assert (await cw.patch(f"/_sandbox/phases/{phase['id']}", json=body)).status_code == code
    assert (await cw.patch("/_sandbox/phases/99999", json={"status": "Open"})).status_code == 404
