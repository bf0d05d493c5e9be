"""Projects (`/project/projects`), their phases and team members, and the project and
phase statuses (`/project/phaseStatuses`: a phase's state — `ProjectPhase` has no
`closedFlag`, its status does). Read-only here; the admin API changes projects and
phases.

Team members are documented endpoints whose model (`ProjectTeamMember`) the facts do not
include: they are served as before and left out of the model check."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from connectwise_sandbox.auth import authenticate
from connectwise_sandbox.errors import not_found
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.responses import (
    collection_routes,
    count_response,
    documented_query,
    find_record,
    list_response,
    record_response,
)
from connectwise_sandbox.state import SandboxState, State

router = APIRouter(
    dependencies=[Depends(authenticate), Depends(documented_query)], tags=["ConnectWise API"]
)

collection_routes(
    router, "/project/statuses", "ProjectStatus", lambda s: s.store.project_statuses,
    lambda s: s.project_status,
)  # fmt: skip
collection_routes(
    router, "/project/phaseStatuses", "PhaseStatus", lambda s: s.store.phase_statuses,
    lambda s: s.phase_status,
)  # fmt: skip
collection_routes(
    router, "/project/projects", "Project", lambda s: s.store.projects(), lambda s: s.project
)


def _existing(state: SandboxState, project_id: int) -> None:
    if state.store.project(project_id) is None:
        raise not_found("Project", project_id)


def _phases(state: SandboxState, project_id: int) -> list[JsonObject]:
    _existing(state, project_id)
    return state.store.phases_of(project_id)


def _team(state: SandboxState, project_id: int) -> list[JsonObject]:
    _existing(state, project_id)
    return state.store.team_of(project_id)


@router.get("/project/projects/{project_id}/phases")
def list_phases(project_id: int, request: Request, state: State) -> Response:
    return list_response(request, _phases(state, project_id), state.store.schemas.phase)


@router.get("/project/projects/{project_id}/phases/count")
def count_phases(project_id: int, request: Request, state: State) -> Response:
    return count_response(request, _phases(state, project_id), state.store.schemas.phase)


@router.get("/project/projects/{project_id}/phases/{phase_id}")
def get_phase(project_id: int, phase_id: int, request: Request, state: State) -> Response:
    phase = find_record(_phases(state, project_id), phase_id, "Phase")
    return record_response(request, phase, state.store.schemas.phase)


@router.get("/project/projects/{project_id}/teamMembers")
def list_team_members(project_id: int, request: Request, state: State) -> Response:
    """Who works on the project: its manager, everyone on its tickets, and others."""
    return list_response(request, _team(state, project_id), state.store.schemas.team_member)


@router.get("/project/projects/{project_id}/teamMembers/count")
def count_team_members(project_id: int, request: Request, state: State) -> Response:
    return count_response(request, _team(state, project_id), state.store.schemas.team_member)


@router.get("/project/projects/{project_id}/teamMembers/{team_member_id}")
def get_team_member(
    project_id: int, team_member_id: int, request: Request, state: State
) -> Response:
    member = find_record(_team(state, project_id), team_member_id, "TeamMember")
    return record_response(request, member, state.store.schemas.team_member)
