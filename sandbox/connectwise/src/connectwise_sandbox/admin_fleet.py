"""Fleet mode's control API under `/_sandbox/fleet` (no auth): the fleet's shape and,
paged, every fleet member's credentials — what a benchmark connects with. A simulator
convenience, never a real API's. With fleet mode off the pages are empty."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Query

from connectwise_sandbox.fleet import FleetMember, FleetSpec
from connectwise_sandbox.state import SandboxState, State

router = APIRouter(prefix="/_sandbox/fleet", tags=["sandbox admin"])

MAX_PAGE: Final = 10_000
Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]


def _spec(state: SandboxState) -> FleetSpec:
    if state.fleet is not None:
        return state.fleet.spec
    return FleetSpec.from_settings(state.settings, state.seed)  # off: no companies


def _page(key: str, rows: list[FleetMember], total: int, offset: int, limit: int) -> dict[str, Any]:
    following = offset + len(rows)
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "next_offset": following if following < total else None,
        key: [row.as_json() for row in rows],
    }


@router.get("")
def fleet(state: State) -> dict[str, Any]:
    """The fleet's shape, which companies are down, and how many are built so far."""
    spec = _spec(state)
    settings = state.settings
    return {
        "companies": spec.companies,
        "members_per_company": spec.members_per_company,
        "tickets_per_member": spec.tickets_per_member,
        "members": spec.members,
        "seed": spec.seed,
        "down_fraction": spec.down_fraction,
        "down_companies": [spec.company_id(index) for index in sorted(spec.down)],
        "down_hang_seconds": settings.fleet_down_hang_seconds,
        "built_companies": state.fleet.built if state.fleet is not None else 0,
        "latency_ms": settings.latency_ms,
        "latency_tail_ms": settings.latency_tail_ms,
        "latency_tail_fraction": settings.latency_tail_fraction,
    }


@router.get("/members")
def fleet_members(state: State, offset: Offset = 0, limit: Limit = 1000) -> dict[str, Any]:
    """Technicians, company by company (`tech0001`… of `fleet00001`, then `fleet00002`'s):
    `company_id, member_id, member_identifier, email, license_class, public_key,
    private_key, down`. Follow `next_offset` until it is null."""
    spec = _spec(state)
    return _page("members", spec.technicians(offset, limit), spec.members, offset, limit)


@router.get("/companies")
def fleet_api_members(state: State, offset: Offset = 0, limit: Limit = 1000) -> dict[str, Any]:
    """Each company's API member (`syntaskio-api`, licence class "A"), one per company,
    in company order: the keys of a company-wide connection."""
    spec = _spec(state)
    return _page("companies", spec.api_members(offset, limit), spec.companies, offset, limit)
