"""Callbacks (`/system/callbacks`) and their signing keys (`/system/callbackKeys`).
A callback belongs to the member whose credentials registered it (see `callbacks.py`)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from connectwise_sandbox.auth import CurrentCaller, CurrentMember, authenticate
from connectwise_sandbox.bodies import documented_body, validated
from connectwise_sandbox.callbacks import LEVELS, Callback, DuplicateCallback
from connectwise_sandbox.errors import invalid_object, not_found
from connectwise_sandbox.events import EntityType
from connectwise_sandbox.responses import (
    count_response,
    documented_query,
    json_response,
    list_response,
    record_response,
)
from connectwise_sandbox.state import SandboxState, State

router = APIRouter(
    dependencies=[Depends(authenticate), Depends(documented_query)], tags=["ConnectWise API"]
)
RESOURCE = "callback"
# The CallbackEntry members the sandbox models; `isSoapCallbackFlag` only as false (it
# delivers REST callbacks only). The model requires url, objectId, type and level.
SUPPORTED = frozenset(
    {
        "url",
        "objectId",
        "type",
        "level",
        "description",
        "inactiveFlag",
        "isSelfSuppressedFlag",
        "isSoapCallbackFlag",
    }
)


class NewCallback(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    url: str = Field(min_length=1, max_length=1000)
    object_id: int = Field(alias="objectId", ge=0)
    type: str
    level: str
    description: str | None = Field(default=None, max_length=100)
    inactive: bool = Field(default=False, alias="inactiveFlag")
    self_suppressed: bool = Field(default=False, alias="isSelfSuppressedFlag")
    soap: bool = Field(default=False, alias="isSoapCallbackFlag")


def _owned(state: SandboxState, member_id: int) -> list[dict[str, object]]:
    return [callback.record() for callback in state.callbacks.owned_by(member_id)]


@router.get("/system/callbacks")
def list_callbacks(request: Request, member: CurrentMember, state: State) -> Response:
    """The caller's callbacks."""
    return list_response(request, _owned(state, member["id"]), state.callbacks.schema)


@router.get("/system/callbacks/count")
def count_callbacks(request: Request, member: CurrentMember, state: State) -> Response:
    return count_response(request, _owned(state, member["id"]), state.callbacks.schema)


@router.post("/system/callbacks", status_code=201)
def add_callback(
    request: Request,
    member: CurrentMember,
    caller: CurrentCaller,
    state: State,
    raw: Annotated[Any, Body()] = None,
) -> Response:
    members = documented_body(raw, "CallbackEntry", RESOURCE, supported=SUPPORTED)
    body = validated(NewCallback, members, RESOURCE)
    if body.soap:
        raise invalid_object(
            RESOURCE,
            "isSoapCallbackFlag",
            "The sandbox delivers REST callbacks only",
            "NotSupported",
        )
    url = urlsplit(body.url.strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise invalid_object(RESOURCE, "url", "url must be an absolute http(s) URL")
    types = {entity.value.lower(): entity for entity in EntityType}
    entity = types.get(body.type.strip().lower())
    if entity is None:
        allowed = ", ".join(e.value for e in EntityType)
        raise invalid_object(RESOURCE, "type", f"type must be one of {allowed}")
    levels = {level.lower(): level for level in LEVELS}
    level = levels.get(body.level.strip().lower())
    if level is None:
        raise invalid_object(RESOURCE, "level", f"level must be one of {', '.join(LEVELS)}")
    try:
        callback: Callback = state.callbacks.register(
            url=body.url.strip(),
            object_id=body.object_id,
            type_=entity,
            level=level,
            description=body.description,
            owner=member,
            caller=caller.key,
            api_base=_api_base(request, state),
            self_suppressed=body.self_suppressed,
            inactive=body.inactive,
        )
    except DuplicateCallback as error:
        raise invalid_object(RESOURCE, "url", str(error), "Duplicate") from None
    return record_response(request, callback.record(), state.callbacks.schema, status_code=201)


@router.get("/system/callbacks/{callback_id}")
def get_callback(
    callback_id: int, request: Request, member: CurrentMember, state: State
) -> Response:
    callback = state.callbacks.get(callback_id, member["id"])
    if callback is None:
        raise not_found("Callback", callback_id)
    return record_response(request, callback.record(), state.callbacks.schema)


@router.delete("/system/callbacks/{callback_id}", status_code=204)
def delete_callback(callback_id: int, member: CurrentMember, state: State) -> Response:
    if not state.callbacks.delete(callback_id, member["id"]):
        raise not_found("Callback", callback_id)
    return Response(status_code=204)


@router.get("/system/callbackKeys/{key_id}")
def callback_key(key_id: str, state: State) -> Response:
    """The signing key a delivery's `Metadata.key_url` names: `{"signing_key": "…"}`.
    Any authenticated caller may read it; a rotated-away key is 404.

    Not in the documented paths (the facts cover the REST operations): it belongs to the
    callback protocol of ConnectWise's developer guide ("Callbacks",
    developer.connectwise.com/Manage/Developer_Guide/Callbacks), which signs deliveries
    with the key behind `key_url`. Kept so deliveries can be verified; its answer has no
    model in the facts and is not held against one."""
    signing_key = state.callbacks.signing_key(key_id)
    if signing_key is None:
        raise not_found("CallbackKey", key_id)
    return json_response({"signing_key": signing_key})


def _api_base(request: Request, state: SandboxState) -> str:
    """The absolute API base this request came through: deliveries' `key_url`s point
    back to the same host and prefix the integration uses."""
    path = request.url.path
    prefix = next(
        (p for p in state.api_prefixes if path.startswith(p + "/")), state.settings.api_prefix
    )
    return f"{request.url.scheme}://{request.url.netloc}{prefix}"
