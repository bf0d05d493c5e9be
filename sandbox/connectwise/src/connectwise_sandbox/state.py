"""Everything one running sandbox holds, and the FastAPI dependency that hands it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final, cast

from fastapi import Depends, Request

from connectwise_sandbox.callbacks import CallbackRegistry
from connectwise_sandbox.faults import FaultInjector
from connectwise_sandbox.member_tokens import MemberTokens
from connectwise_sandbox.oauth import OAuthServer
from connectwise_sandbox.seed import Dataset, generate
from connectwise_sandbox.settings import Settings
from connectwise_sandbox.stats import RequestStats
from connectwise_sandbox.store import Store

if TYPE_CHECKING:  # the fleet builds states of its own
    from connectwise_sandbox.fleet import Fleet
    from connectwise_sandbox.latency import Latency

# Clients built before cloud codebases hard-code this one; real hosts answer on it too.
LEGACY_CODEBASE = "v4_6_release/"
HOME_COMPANY_NAME: Final = "Syntaskio Sandbox MSP"


@dataclass
class SandboxState:
    settings: Settings
    store: Store
    faults: FaultInjector
    stats: RequestStats
    seed: int
    tickets: int
    oauth: OAuthServer
    member_tokens: MemberTokens
    callbacks: CallbackRegistry
    # The company this state's data belongs to: the settings' one, or a fleet company's.
    company_id: str = ""
    company_name: str = HOME_COMPANY_NAME
    # The fleet companies (fleet mode; on the home state only).
    fleet: Fleet | None = None
    # The API's response latency (one for the whole host; None = none).
    latency: Latency | None = None

    def __post_init__(self) -> None:
        self.company_id = self.company_id or self.settings.company_id

    @property
    def api_prefixes(self) -> tuple[str, ...]:
        legacy = f"/{LEGACY_CODEBASE}apis/3.0"
        prefix = self.settings.api_prefix
        return (prefix,) if prefix == legacy else (prefix, legacy)

    def is_api_path(self, path: str) -> bool:
        """The ConnectWise surface: the REST API and the unauthenticated login lookups."""
        if path.startswith("/login/"):
            return True
        return any(path == p or path.startswith(p + "/") for p in self.api_prefixes)

    def dataset(self) -> Dataset:
        return generate(
            seed=self.seed,
            tickets=self.tickets,
            anchor=self.settings.anchor,
            extra_technicians=self.settings.extra_technicians,
        )

    def company_named(self, company_id: str) -> tuple[str, str] | None:
        """(company id, name) of the home or a fleet company, case-insensitively."""
        if company_id.strip().lower() == self.company_id.lower():
            return self.company_id, self.company_name
        return self.fleet.company_named(company_id) if self.fleet is not None else None


def get_state(request: Request) -> SandboxState:
    """The state of the company the request is for: in fleet mode, an API request's
    Basic credentials name it; everything else (and every other mode) gets the home one."""
    home = cast(SandboxState, request.app.state.sandbox)
    if home.fleet is None:
        return home
    return home.fleet.state_for_request(request, home)


State = Annotated[SandboxState, Depends(get_state)]
