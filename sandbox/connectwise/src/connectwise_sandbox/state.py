"""Everything one running sandbox holds, and the FastAPI dependency that hands it out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request

from connectwise_sandbox.callbacks import CallbackRegistry
from connectwise_sandbox.faults import FaultInjector
from connectwise_sandbox.member_tokens import MemberTokens
from connectwise_sandbox.oauth import OAuthServer
from connectwise_sandbox.seed import Dataset, generate
from connectwise_sandbox.settings import Settings
from connectwise_sandbox.stats import RequestStats
from connectwise_sandbox.store import Store

# Clients built before cloud codebases hard-code this one; real hosts answer on it too.
LEGACY_CODEBASE = "v4_6_release/"


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


def get_state(request: Request) -> SandboxState:
    return cast(SandboxState, request.app.state.sandbox)


State = Annotated[SandboxState, Depends(get_state)]
