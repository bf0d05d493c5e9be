"""ConnectWise API authentication as the product does it: HTTP Basic with
`{companyId}+{publicKey}:{privateKey}` plus a registered `clientId` header on every call.
The member whose keys were used is the caller. Keys are never logged or echoed.

Two more credentials name a caller: a minted impersonation key pair (Basic, as above,
valid until it expires) and an OAuth2 access token (`Authorization: Bearer ...`) from
the sandbox's authorization server. The clientId header is required with both.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from connectwise_sandbox.callers import (
    CALLER_STATE_KEY,
    Caller,
    api_key_caller,
    bearer_caller,
    member_token_caller,
    remember,
)
from connectwise_sandbox.errors import CwError
from connectwise_sandbox.oauth import BearerRejected
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.state import SandboxState, State

_BASIC_HELP = "use Basic base64('{companyId}+{publicKey}:{privateKey}') or a Bearer token"


def _unauthorized(message: str) -> CwError:
    return CwError(401, "Unauthorized", message)


def authenticate(request: Request, state: State) -> JsonObject:
    """The authenticated member, or a 401/403 in ConnectWise's error shape. Remembers
    the caller (see `callers.py`) for request accounting and callback ownership."""
    member, caller = _caller(request.headers.get("authorization"), state)
    if member["inactiveFlag"]:
        raise _unauthorized(f"Member '{member['identifier']}' is inactive")

    client_id = (request.headers.get("clientid") or "").strip()
    if not client_id:
        raise _unauthorized("A clientId header is required on every API request")
    if client_id.lower() not in state.settings.client_ids:
        raise CwError(403, "Forbidden", "The clientId is not registered for this site")
    remember(request, caller)
    return member


def _caller(header: str | None, state: SandboxState) -> tuple[JsonObject, Caller]:
    if not header:
        raise _unauthorized(f"Authorization header is missing; {_BASIC_HELP}")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        try:
            member_id = state.oauth.member_for_bearer(token.strip())
        except BearerRejected as error:
            raise _unauthorized(str(error)) from None
        holder = _existing(state, member_id)
        return holder, bearer_caller(holder["identifier"])
    company, public_key, private_key = _credentials(scheme, token)
    if company.lower() != state.company_id.lower():
        raise _unauthorized(f"Company '{company}' is not valid for this site")
    member = state.store.member_for_key(public_key, private_key)
    if member is not None:
        return member, api_key_caller(company, public_key, member["identifier"])
    minted = state.member_tokens.find(public_key, private_key)
    if minted is None:
        raise _unauthorized("Incorrect public/private key")
    if state.member_tokens.expired(minted):
        raise _unauthorized("The member token has expired")
    impersonated = _existing(state, minted.member_id)
    return impersonated, member_token_caller(impersonated["identifier"])


def _existing(state: SandboxState, member_id: int) -> JsonObject:
    member = state.store.member(member_id)
    if member is None:  # only after a reset to a dataset without that member
        raise _unauthorized("The credential's member no longer exists")
    return member


def _credentials(scheme: str, token: str) -> tuple[str, str, str]:
    if scheme.lower() != "basic" or not token.strip():
        raise _unauthorized(f"Authorization must be Basic or Bearer; {_BASIC_HELP}")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized(f"Authorization is not valid base64; {_BASIC_HELP}") from None
    user, colon, private_key = decoded.partition(":")
    company, plus, public_key = user.partition("+")
    if not colon or not plus or not company or not public_key or not private_key:
        raise _unauthorized(f"Authorization is not companyId+publicKey:privateKey; {_BASIC_HELP}")
    return company, public_key, private_key


def current_caller(request: Request, _: Annotated[JsonObject, Depends(authenticate)]) -> Caller:
    """The authenticated caller's identity (after `authenticate` has run)."""
    caller = getattr(request.state, CALLER_STATE_KEY, None)
    if not isinstance(caller, Caller):  # pragma: no cover - authenticate always sets it
        raise _unauthorized("not authenticated")
    return caller


CurrentMember = Annotated[JsonObject, Depends(authenticate)]
CurrentCaller = Annotated[Caller, Depends(current_caller)]
