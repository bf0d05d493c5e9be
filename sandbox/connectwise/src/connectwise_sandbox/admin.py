"""The sandbox's own control API under `/_sandbox` — no ConnectWise auth, for tests,
demos and benchmarks: credentials, live service ticket changes, reset, request stats,
faults, OAuth and member-token inspection and expiry. Project tickets, projects and
schedule entries are in `admin_work.py`, callbacks in `admin_callbacks.py`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from connectwise_sandbox.faults import Fault
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.settings import MAX_TICKETS
from connectwise_sandbox.state import State
from connectwise_sandbox.store import (
    KEEP,
    InvalidChange,
    Keep,
    RecordNotFound,
    TicketChange,
    TicketKind,
    UnknownReference,
)

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])

Summary = Annotated[str, Field(min_length=1, max_length=100)]


class TicketFields(BaseModel):
    """Ticket fields by human names: `owner`/`resources` are member identifiers, `board`,
    `status` and `priority` names, `company` a company identifier."""

    model_config = ConfigDict(extra="forbid")

    summary: Summary | None = None
    description: str | None = Field(
        default=None, validation_alias=AliasChoices("description", "initialDescription")
    )
    owner: str | None = None
    resources: list[str] | None = None
    board: str | None = None
    status: str | None = None
    priority: str | None = None
    company: str | None = None
    required_date: datetime | None = Field(
        default=None, validation_alias=AliasChoices("requiredDate", "required_date")
    )

    @field_validator("resources", mode="before")
    @classmethod
    def _comma_string(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def change(self) -> TicketChange:
        """Only the fields the caller sent; an explicit null clears owner, resources and
        requiredDate and is refused for fields a ticket always has."""
        sent = self.model_fields_set
        for name in ("summary", "description", "board", "status", "priority", "company"):
            if name in sent and getattr(self, name) is None:
                raise HTTPException(400, f"{name} cannot be null")

        def pick(name: str, value: Any) -> Any:
            return value if name in sent else KEEP

        resources: tuple[str, ...] | Keep = (
            tuple(self.resources or ()) if "resources" in sent else KEEP
        )
        return TicketChange(
            summary=pick("summary", self.summary),
            description=pick("description", self.description),
            owner=pick("owner", self.owner),
            resources=resources,
            board=pick("board", self.board),
            status=pick("status", self.status),
            priority=pick("priority", self.priority),
            company=pick("company", self.company),
            required_date=pick("required_date", self.required_date),
        )


class NewTicket(TicketFields):
    summary: Summary


class FaultRequest(BaseModel):
    """A status, a delay, or both; for the next `count` calls (default 1) or, with
    `duration_seconds`, every call until that window ends."""

    model_config = ConfigDict(extra="forbid")

    status: Literal[429, 500, 502, 503, 504] | None = None
    count: int | None = Field(default=None, ge=1, le=100_000)
    retry_after: int | None = Field(default=None, ge=0, le=3600)
    path_contains: str | None = None
    delay_seconds: float | None = Field(default=None, gt=0, le=120)
    duration_seconds: float | None = Field(default=None, gt=0, le=86_400)

    @model_validator(mode="after")
    def _meaningful(self) -> FaultRequest:
        if self.status is None and self.delay_seconds is None:
            raise ValueError("give a status, a delay_seconds, or both")
        if self.count is not None and self.duration_seconds is not None:
            raise ValueError("count and duration_seconds exclude each other")
        return self


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    tickets: int | None = Field(default=None, ge=0, le=MAX_TICKETS)


def _fault_json(fault: Fault, seconds_left: float | None) -> JsonObject:
    """The original four keys, plus `delay_seconds` and `seconds_left` when they apply."""
    shown: JsonObject = {
        "status": fault.status,
        "remaining": fault.remaining,
        "retry_after": fault.retry_after,
        "path_contains": fault.path_contains,
    }
    if fault.delay_seconds is not None:
        shown["delay_seconds"] = fault.delay_seconds
    if seconds_left is not None:
        shown["seconds_left"] = round(seconds_left, 3)
    return shown


@router.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/config")
def config(state: State) -> dict[str, Any]:
    """Where the API is and what was seeded — the non-secret facts a client needs."""
    settings = state.settings
    return {
        "company_id": settings.company_id,
        "codebase": settings.codebase,
        "api_prefix": settings.api_prefix + "/",
        "client_ids": list(settings.client_ids),
        "seed": state.seed,
        "tickets": state.tickets,
        "anchor": settings.anchor.isoformat(),
        # The OAuth client secret is deliberately absent.
        "oauth_client_id": settings.oauth_client_id,
        "oauth_redirect_uris": list(settings.oauth_redirect_uris),
        "oauth_access_token_ttl": settings.oauth_access_token_ttl,
        "oauth_refresh_token_ttl": settings.oauth_refresh_token_ttl,
        "oauth_code_ttl": settings.oauth_code_ttl,
        "member_token_ttl": settings.member_token_ttl,
        "callback_timeout": settings.callback_timeout,
        "callback_attempts": settings.callback_attempts,
        "callback_retry_delay": settings.callback_retry_delay,
    }


@router.get("/api-keys")
def api_keys(state: State) -> list[dict[str, Any]]:
    """Every seeded member's key pair, the API member's included (licence class "A").
    A simulator convenience — never a real API's."""
    license_classes = {member["id"]: member["licenseClass"] for member in state.store.members}
    return [
        {
            "member_id": key.member_id,
            "member_identifier": key.member_identifier,
            "public_key": key.public_key,
            "private_key": key.private_key,
            "company_id": state.settings.company_id,
            "license_class": license_classes.get(key.member_id),
        }
        for key in state.store.api_keys
    ]


def changed(action: Callable[[], JsonObject]) -> JsonObject:
    """Run a store change; a missing record is 404, a refused change 400."""
    try:
        record = action()
    except RecordNotFound as error:
        raise HTTPException(404, str(error)) from None
    except (UnknownReference, InvalidChange) as error:
        raise HTTPException(400, str(error)) from None
    return record


@router.post("/tickets", status_code=status.HTTP_201_CREATED)
def create_ticket(body: NewTicket, state: State) -> JsonObject:
    change = body.change()
    return changed(lambda: state.store.create_ticket(change))


@router.patch("/tickets/{ticket_id}")
def update_ticket(ticket_id: int, body: TicketFields, state: State) -> JsonObject:
    change = body.change()
    return changed(lambda: state.store.update_ticket(ticket_id, change))


@router.post("/tickets/{ticket_id}/close")
def close_ticket(ticket_id: int, state: State) -> JsonObject:
    return changed(lambda: state.store.close_ticket(ticket_id))


class CustomerReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


@router.post("/tickets/{ticket_id}/customer-reply", status_code=status.HTTP_201_CREATED)
def customer_reply(ticket_id: int, body: CustomerReply, state: State) -> JsonObject:
    """The ticket's contact replies (as by e-mail): their note, and the ticket flagged
    `customerUpdatedFlag`."""
    return changed(lambda: state.store.add_customer_reply(ticket_id, TicketKind.SERVICE, body.text))


@router.delete("/tickets/{ticket_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_ticket(ticket_id: int, state: State) -> Response:
    try:
        state.store.delete_ticket(ticket_id)
    except RecordNotFound as error:
        raise HTTPException(404, str(error)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/reset")
def reset(state: State, body: ResetRequest | None = None) -> dict[str, Any]:
    """Regenerate the data from the seed (optionally another seed or size) and clear
    faults, request stats, OAuth grants and tokens, minted member tokens, and callbacks
    with their signing keys and delivery log. No callbacks fire for the reset. Fleet
    companies are forgotten too, rebuilt from the (new) seed on use."""
    if body is not None:
        state.seed = state.seed if body.seed is None else body.seed
        state.tickets = state.tickets if body.tickets is None else body.tickets
    state.store.reset(state.dataset())
    state.faults.clear()
    state.stats.reset()
    state.oauth.reset()
    state.member_tokens.reset()
    state.callbacks.reset()
    if state.fleet is not None:
        state.fleet.reset(state.seed)
    return {"status": "ok", "seed": state.seed, "tickets": state.tickets}


@router.get("/stats")
def stats(state: State) -> dict[str, Any]:
    return state.stats.snapshot()


@router.delete("/stats", status_code=status.HTTP_204_NO_CONTENT)
def reset_stats(state: State) -> Response:
    state.stats.reset()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/faults", status_code=status.HTTP_201_CREATED)
def add_fault(body: FaultRequest, state: State) -> JsonObject:
    """The next `count` API calls (default 1) whose path contains `path_contains` (all,
    if unset) — or, with `duration_seconds`, every such call until the window ends —
    wait `delay_seconds` (if set) and then fail with `status` (if set; else they
    succeed, slowly). A 429 carries `Retry-After` (default 1 second)."""
    faults = state.faults
    window = body.duration_seconds
    fault = Fault(
        status=body.status,
        remaining=None if window is not None else body.count or 1,
        retry_after=body.retry_after,
        path_contains=body.path_contains,
        delay_seconds=body.delay_seconds,
        until=faults.window(window) if window is not None else None,
    )
    faults.add(fault)
    return _fault_json(fault, faults.seconds_left(fault))


@router.get("/faults")
def list_faults(state: State) -> list[JsonObject]:
    faults = state.faults
    return [_fault_json(fault, faults.seconds_left(fault)) for fault in faults.pending()]


@router.delete("/faults", status_code=status.HTTP_204_NO_CONTENT)
def clear_faults(state: State) -> Response:
    state.faults.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/oauth")
def oauth_stats(state: State) -> dict[str, Any]:
    """Authorization-server counters: successful grants by type, token endpoint calls
    (failed ones too), reuse detections (code or rotated refresh token), families."""
    return state.oauth.snapshot() | {"member_tokens_minted": state.member_tokens.minted}


@router.post("/oauth/expire-access-tokens", status_code=status.HTTP_204_NO_CONTENT)
def expire_access_tokens(state: State) -> Response:
    """Every access token issued so far expires now: clients must refresh."""
    state.oauth.expire_access_tokens()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/oauth/revoke-all", status_code=status.HTTP_204_NO_CONTENT)
def revoke_all(state: State) -> Response:
    """Every token family is revoked, as when the user removes the app: refreshing then
    fails with invalid_grant and access tokens with 401."""
    state.oauth.revoke_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/member-tokens/expire", status_code=status.HTTP_204_NO_CONTENT)
def expire_member_tokens(state: State) -> Response:
    """Every minted impersonation key pair expires now."""
    state.member_tokens.expire_all()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
