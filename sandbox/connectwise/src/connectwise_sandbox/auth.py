"""ConnectWise API authentication as the product does it: HTTP Basic with
`{companyId}+{publicKey}:{privateKey}` plus a registered `clientId` header on every call.
The member whose keys were used is the caller. Keys are never logged or echoed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from connectwise_sandbox.errors import CwError
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.state import State

_BASIC_HELP = "use Basic base64('{companyId}+{publicKey}:{privateKey}')"


def _unauthorized(message: str) -> CwError:
    return CwError(401, "Unauthorized", message)


def authenticate(request: Request, state: State) -> JsonObject:
    """The authenticated member, or a 401/403 in ConnectWise's error shape."""
    company, public_key, private_key = _credentials(request.headers.get("authorization"))
    if company.lower() != state.settings.company_id.lower():
        raise _unauthorized(f"Company '{company}' is not valid for this site")
    member = state.store.member_for_key(public_key, private_key)
    if member is None:
        raise _unauthorized("Incorrect public/private key")
    if member["inactiveFlag"]:
        raise _unauthorized(f"Member '{member['identifier']}' is inactive")

    client_id = (request.headers.get("clientid") or "").strip()
    if not client_id:
        raise _unauthorized("A clientId header is required on every API request")
    if client_id.lower() not in state.settings.client_ids:
        raise CwError(403, "Forbidden", "The clientId is not registered for this site")
    return member


def _credentials(header: str | None) -> tuple[str, str, str]:
    if not header:
        raise _unauthorized(f"Authorization header is missing; {_BASIC_HELP}")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        raise _unauthorized(f"Authorization must be Basic; {_BASIC_HELP}")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized(f"Authorization is not valid base64; {_BASIC_HELP}") from None
    user, colon, private_key = decoded.partition(":")
    company, plus, public_key = user.partition("+")
    if not colon or not plus or not company or not public_key or not private_key:
        raise _unauthorized(f"Authorization is not companyId+publicKey:privateKey; {_BASIC_HELP}")
    return company, public_key, private_key


CurrentMember = Annotated[JsonObject, Depends(authenticate)]
