"""Admin API (`/_sandbox/callbacks`, no auth) over callbacks: every registration, the
delivery log, pausing deliveries, and rotating signing keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict

from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.state import State

router = APIRouter(prefix="/_sandbox/callbacks", tags=["sandbox admin"])


@router.get("")
def callbacks(state: State) -> dict[str, Any]:
    """Every registration (whoever owns it) with its owner, caller and key id, the
    number of deliveries not finished yet, and whether deliveries are paused."""
    registry = state.callbacks
    return {
        "callbacks": [
            callback.record()
            | {
                "owner": callback.owner_identifier,
                "caller": callback.caller,
                "key_id": registry.key_id_of(callback.owner_id),
            }
            for callback in registry.every()
        ],
        "pending": registry.deliverer.pending(),
        "paused": registry.deliverer.paused,
    }


@router.get("/deliveries")
def deliveries(state: State) -> list[JsonObject]:
    """Finished deliveries, oldest first: callback id, url, action, type, record id,
    attempts, the final status code or error, and whether it was delivered (2xx)."""
    return state.callbacks.deliverer.log()


@router.delete("/deliveries", status_code=status.HTTP_204_NO_CONTENT)
def clear_deliveries(state: State) -> Response:
    state.callbacks.deliverer.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/pause", status_code=status.HTTP_204_NO_CONTENT)
def pause(state: State) -> Response:
    """Hold new deliveries (for example, to change several records first)."""
    state.callbacks.deliverer.pause()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/resume", status_code=status.HTTP_204_NO_CONTENT)
def resume(state: State) -> Response:
    """Send the held deliveries and stop holding."""
    state.callbacks.deliverer.resume()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member: str | None = None


@router.post("/keys/rotate")
def rotate_keys(state: State, body: RotateRequest | None = None) -> dict[str, list[str]]:
    """New signing keys, and key urls, for one callback owner (`{"member": "atech"}`) or
    all; the old key urls answer 404 from now on."""
    member_id = None
    if body is not None and body.member is not None:
        member = state.store.member_by_identifier(body.member)
        if member is None:
            raise HTTPException(404, f"member '{body.member}' not found")
        member_id = member["id"]
    rotated = state.callbacks.rotate(member_id)
    identifiers = [(state.store.member(m) or {}).get("identifier", str(m)) for m in rotated]
    return {"rotated": identifiers}
