"""The OAuth2 authorization server's endpoints, mounted under every API prefix (so
request counting and fault injection apply to them as to the REST API):

* `GET|POST /system/oauth/authorize` — authorization code + PKCE S256 only;
* `POST /system/oauth/token` — `authorization_code` and `refresh_token` (rotated) grants;
* `POST /system/oauth/revoke` — RFC 7009.

Errors are RFC 6749's, not ConnectWise's: a bad client or redirect URI gets an HTML page
(never a redirect, RFC 9700 §4.1), other authorization errors go back to the client on
its redirect URI, and the token endpoints answer `{"error", "error_description"}` JSON.
Form bodies are parsed here (no python-multipart needed). Secrets are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from connectwise_sandbox.consent import HTML_HEADERS, consent_page, error_page
from connectwise_sandbox.oauth import SCOPES, IssuedTokens, OAuthError, is_s256_challenge
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.seed import API_LICENSE_CLASS
from connectwise_sandbox.settings import Settings
from connectwise_sandbox.state import SandboxState, State

router = APIRouter(tags=["OAuth2 authorization server"])

Params = Mapping[str, list[str]]

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
MAX_FORM_BYTES: Final = 16_384
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_AUTHORIZE_PARAMS: Final = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
    "login_hint",
    "member",
    "decision",
)


class _Refused(Exception):
    """An authorization request that must not be redirected: 400 HTML page."""


class _Redirected(Exception):
    """An authorization error the client hears about on its redirect URI."""

    def __init__(self, redirect_uri: str, state: str | None, error: str, description: str) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.state = state
        self.error = error
        self.description = description

    def response(self) -> Response:
        return _redirect(
            self.redirect_uri,
            {"error": self.error, "error_description": self.description},
            self.state,
        )


@dataclass(frozen=True)
class _AuthorizeRequest:
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str
    login_hint: str | None

    def hidden(self) -> dict[str, str]:
        """The request as the consent form carries it back."""
        fields = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scopes),
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
        }
        if self.state is not None:
            fields["state"] = self.state
        return fields

    def fail(self, error: str, description: str) -> _Redirected:
        return _Redirected(self.redirect_uri, self.state, error, description)


# --- the authorization endpoint ---------------------------------------------------------


@router.get("/system/oauth/authorize", response_class=HTMLResponse)
def authorize(request: Request, sandbox: State) -> Response:
    """The consent page: which application asks for which scopes, a member to sign in
    as (pre-selected from `login_hint`) and Approve / Deny."""
    params = parse_qs(request.url.query, keep_blank_values=True)
    try:
        grant = _validate(params, sandbox.settings)
    except _Refused as refused:
        return _html(error_page(str(refused)), 400)
    except _Redirected as redirected:
        return redirected.response()
    members = _signable_members(sandbox)
    hint = _find_member(members, grant.login_hint)
    page = consent_page(
        action=request.url.path,
        app_name=sandbox.settings.oauth_client_name,
        client_id=grant.client_id,
        company_id=sandbox.settings.company_id,
        redirect_uri=grant.redirect_uri,
        scopes=grant.scopes,
        members=members,
        selected=None if hint is None else hint["identifier"],
        hidden=grant.hidden(),
    )
    return _html(page, 200)


@router.post("/system/oauth/authorize")
async def decide(request: Request, sandbox: State) -> Response:
    """The consent form's answer: the request is validated again (the form is the
    user agent's, so untrusted), then `code` or `error=access_denied` is redirected."""
    try:
        form = await _form(request)
        grant = _validate(form, sandbox.settings)
    except (OAuthError, _Refused) as refused:
        return _html(error_page(str(refused)), 400)
    except _Redirected as redirected:
        return redirected.response()
    decision = _first(form, "decision")
    if decision == "deny":
        return grant.fail("access_denied", "the user denied the request").response()
    if decision != "approve":
        return grant.fail("invalid_request", "decision must be approve or deny").response()
    member = _find_member(_signable_members(sandbox), _first(form, "member"))
    if member is None:
        return grant.fail("invalid_request", "member is not an active member").response()
    code = sandbox.oauth.issue_code(
        client_id=grant.client_id,
        redirect_uri=grant.redirect_uri,
        code_challenge=grant.code_challenge,
        member_id=member["id"],
        scopes=grant.scopes,
    )
    return _redirect(grant.redirect_uri, {"code": code}, grant.state)


def _validate(params: Params, settings: Settings) -> _AuthorizeRequest:
    """The checks RFC 6749 §4.1.2.1 orders: client and redirect URI first (failures are
    shown, not redirected), then the rest (failures redirected)."""
    client_id = _first(params, "client_id")
    if client_id is None or len(params["client_id"]) > 1:
        raise _Refused("client_id is missing or repeated")
    if client_id != settings.oauth_client_id:
        raise _Refused("client_id is not a registered application")
    redirect_uri = _first(params, "redirect_uri")
    if redirect_uri is None or len(params["redirect_uri"]) > 1:
        raise _Refused("redirect_uri is missing or repeated")
    if redirect_uri not in settings.oauth_redirect_uris:
        raise _Refused("redirect_uri is not registered")

    grant = _AuthorizeRequest(
        client_id=client_id,
        redirect_uri=redirect_uri,
        scopes=tuple(dict.fromkeys((_first(params, "scope") or "").split())),
        state=_first(params, "state"),
        code_challenge=_first(params, "code_challenge") or "",
        login_hint=_first(params, "login_hint"),
    )
    repeated = [name for name in _AUTHORIZE_PARAMS if len(params.get(name, ())) > 1]
    if repeated:
        raise grant.fail("invalid_request", f"{repeated[0]} is repeated")
    if _first(params, "response_type") != "code":
        raise grant.fail("unsupported_response_type", "only response_type=code is supported")
    if not grant.code_challenge:
        raise grant.fail("invalid_request", "code_challenge is required (PKCE)")
    if _first(params, "code_challenge_method") != "S256":
        raise grant.fail("invalid_request", "code_challenge_method must be S256; plain is refused")
    if not is_s256_challenge(grant.code_challenge):
        raise grant.fail("invalid_request", "code_challenge must be 43 base64url characters")
    known = " ".join(SCOPES)
    if not grant.scopes:
        raise grant.fail("invalid_scope", f"scope is required; known scopes: {known}")
    if any(scope not in SCOPES for scope in grant.scopes):
        raise grant.fail("invalid_scope", f"unknown scope; known scopes: {known}")
    return grant


def _signable_members(sandbox: SandboxState) -> list[JsonObject]:
    """Who may sign in: active people. API members have no interactive login."""
    return [
        member
        for member in sandbox.store.members
        if not member["inactiveFlag"] and member["licenseClass"] != API_LICENSE_CLASS
    ]


def _find_member(members: Sequence[JsonObject], identifier: str | None) -> JsonObject | None:
    wanted = (identifier or "").strip().lower()
    return next((m for m in members if m["identifier"].lower() == wanted), None)


# --- the token and revocation endpoints -------------------------------------------------


@router.post("/system/oauth/token")
async def token(request: Request, sandbox: State) -> Response:
    """Client authentication by `client_secret_basic` or `client_secret_post`; answers
    RFC 6749 §5.1 JSON with `Cache-Control: no-store`, or a §5.2 error."""
    sandbox.oauth.count_token_request()
    try:
        form = await _form(request)
        client_id = _client(request, form, sandbox.settings)
        issued = _grant(form, client_id, sandbox)
    except OAuthError as error:
        return _oauth_error(error)
    return JSONResponse(issued.as_json(), headers=_NO_STORE)


def _grant(form: Params, client_id: str, sandbox: SandboxState) -> IssuedTokens:
    grant_type = _one(form, "grant_type")
    if grant_type == "authorization_code":
        code = _one(form, "code")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        return sandbox.oauth.exchange_code(
            client_id=client_id,
            code=code,
            redirect_uri=_one(form, "redirect_uri"),
            code_verifier=_one(form, "code_verifier"),
        )
    if grant_type == "refresh_token":
        refresh_token = _one(form, "refresh_token")
        if not refresh_token:
            raise OAuthError("invalid_request", "refresh_token is required")
        scope = _one(form, "scope")
        return sandbox.oauth.refresh(
            client_id=client_id,
            refresh_token=refresh_token,
            scopes=None if scope is None else tuple(dict.fromkeys(scope.split())),
        )
    if grant_type is None:
        raise OAuthError("invalid_request", "grant_type is required")
    raise OAuthError("unsupported_grant_type", "use authorization_code or refresh_token")


@router.post("/system/oauth/revoke")
async def revoke(request: Request, sandbox: State) -> Response:
    """RFC 7009: revokes the token's whole family; 200 with an empty body whether or
    not the token was known."""
    try:
        form = await _form(request)
        client_id = _client(request, form, sandbox.settings)
        revoked = _one(form, "token")
        if not revoked:
            raise OAuthError("invalid_request", "token is required")
    except OAuthError as error:
        return _oauth_error(error)
    sandbox.oauth.revoke(client_id=client_id, token=revoked)
    return Response(status_code=200, headers=_NO_STORE)


def _client(request: Request, form: Params, settings: Settings) -> str:
    """The authenticated client id, or `invalid_client`. RFC 6749 §2.3.1: Basic carries
    the form-urlencoded id and secret; a client uses one method, not two."""
    form_id, form_secret = _one(form, "client_id"), _one(form, "client_secret")
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "use client_secret_basic or client_secret_post")
        if form_secret is not None:
            raise OAuthError("invalid_request", "use one client authentication method")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "the Basic credentials are malformed") from None
        raw_id, colon, raw_secret = decoded.partition(":")
        if not colon:
            raise OAuthError("invalid_client", "the Basic credentials are malformed")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if form_id is not None and form_id != client_id:
            raise OAuthError("invalid_client", "client_id does not match the credentials")
    elif form_id is None or form_secret is None:
        raise OAuthError("invalid_client", "client authentication is required")
    else:
        client_id, secret = form_id, form_secret
    # Both compared every time: no early exit telling which one was wrong.
    id_ok = hmac.compare_digest(client_id.encode(), settings.oauth_client_id.encode())
    secret_ok = hmac.compare_digest(secret.encode(), settings.oauth_client_secret.encode())
    if not (id_ok and secret_ok):
        raise OAuthError("invalid_client", "client authentication failed")
    return client_id


# --- shared -----------------------------------------------------------------------------


async def _form(request: Request) -> Params:
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != FORM_MEDIA_TYPE:
        raise OAuthError("invalid_request", f"the body must be {FORM_MEDIA_TYPE}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "the body is too large")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not a valid form") from None


def _first(params: Params, name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


def _one(params: Params, name: str) -> str | None:
    """RFC 6749 §3.2: token request parameters must not repeat."""
    values = params.get(name) or []
    if len(values) > 1:
        raise OAuthError("invalid_request", f"{name} is repeated")
    return values[0] if values else None


def _oauth_error(error: OAuthError) -> JSONResponse:
    headers = dict(_NO_STORE)
    status = 400
    if error.error == "invalid_client":
        status = 401
        headers["WWW-Authenticate"] = 'Basic realm="ConnectWise sandbox OAuth"'
    body = {"error": error.error, "error_description": error.description}
    return JSONResponse(body, status_code=status, headers=headers)


def _redirect(uri: str, params: dict[str, str], state: str | None) -> Response:
    """`uri` with `params` (and `state`, echoed) added to whatever query it has."""
    if state is not None:
        params = params | {"state": state}
    parts = urlsplit(uri)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return RedirectResponse(urlunsplit(parts._replace(query=query)), 302, headers=_NO_STORE)


def _html(page: str, status: int) -> Response:
    return HTMLResponse(page, status_code=status, headers=HTML_HEADERS)
