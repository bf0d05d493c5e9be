"""Who is calling: the identity request accounting and callback ownership use — the
member the credentials act as plus the kind of credential.

* `{companyId}+{publicKey}` — a member's API key pair (the integration's own keys);
* `member-token:{identifier}` — impersonation keys minted for that member (each mint
  has a new public key; they count as one caller per member);
* `bearer:{identifier}` — an OAuth2 access token acting for that member;
* `oauth-server` — calls to the OAuth2 endpoints (client credentials, no member);
* `anonymous` — no usable credential.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from starlette.requests import Request

from connectwise_sandbox.oauth import BearerRejected

if TYPE_CHECKING:  # the state holds the request stats, which use `Caller`
    from connectwise_sandbox.state import SandboxState

CALLER_STATE_KEY: Final = "cw_caller"


class AuthKind(StrEnum):
    API_KEY = "api-key"
    MEMBER_TOKEN = "member-token"  # noqa: S105 - a credential kind, not a secret
    BEARER = "bearer"
    OAUTH = "oauth"
    NONE = "none"


@dataclass(frozen=True)
class Caller:
    key: str
    member: str | None  # the member identifier, when known
    auth: AuthKind


ANONYMOUS: Final = Caller("anonymous", None, AuthKind.NONE)
OAUTH_SERVER: Final = Caller("oauth-server", None, AuthKind.OAUTH)


def api_key_caller(company: str, public_key: str, member: str | None) -> Caller:
    return Caller(f"{company}+{public_key}", member, AuthKind.API_KEY)


def member_token_caller(member: str) -> Caller:
    return Caller(f"member-token:{member}", member, AuthKind.MEMBER_TOKEN)


def bearer_caller(member: str | None) -> Caller:
    return Caller(f"bearer:{member or 'invalid'}", member, AuthKind.BEARER)


def remember(request: Request, caller: Caller) -> None:
    """Set by authentication; the request scope's state is shared with the middleware."""
    setattr(request.state, CALLER_STATE_KEY, caller)


def caller_of(request: Request, state: SandboxState) -> Caller:
    """The authenticated caller, or — for a request refused before or by authentication
    (an injected fault, a 401) — a best guess from its Authorization header, unverified."""
    known = getattr(request.state, CALLER_STATE_KEY, None)
    if isinstance(known, Caller):
        return known
    if "/system/oauth/" in request.url.path:
        return OAUTH_SERVER
    return _guess(request.headers.get("authorization"), state)


def _guess(header: str | None, state: SandboxState) -> Caller:
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        try:
            member = state.store.member(state.oauth.member_for_bearer(token))
        except BearerRejected:
            return bearer_caller(None)
        return bearer_caller(member["identifier"] if member else None)
    if scheme.lower() != "basic" or not token:
        return ANONYMOUS
    try:
        user, _, private_key = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return ANONYMOUS
    company, plus, public_key = user.partition("+")
    if not plus or not public_key:
        return ANONYMOUS
    key = next((k for k in state.store.api_keys if k.public_key == public_key), None)
    if key is not None:
        return api_key_caller(company, public_key, key.member_identifier)
    minted = state.member_tokens.find(public_key, private_key)
    member = state.store.member(minted.member_id) if minted else None
    if member is not None:
        return member_token_caller(member["identifier"])
    return api_key_caller(company, public_key, None)
