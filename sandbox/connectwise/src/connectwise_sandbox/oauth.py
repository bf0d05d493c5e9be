"""The OAuth2 authorization server's memory: authorization codes, token families, access
and refresh tokens (RFC 6749 + PKCE RFC 7636, following the RFC 9700 security BCP). No
HTTP here; `oauth_routes.py` speaks the protocol.

A *family* is everything descended from one authorization code: the first access and
refresh token and every rotation after them. Reuse of a code or of a rotated refresh
token means one copy was stolen, so the whole family is revoked (RFC 9700 §4.14.2).

Tokens are stored by their SHA-256 only — the plain values exist in responses, never
in memory dumps or logs.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

Clock = Callable[[], datetime]

# The scopes the product was specified with, and what the consent page says they allow.
SCOPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "ConnectWiseManageCallback": "Receive notifications (callbacks) when records change",
        "ServiceTicket": "Read and update service tickets",
        "ProjectTask": "Read and update project tickets and tasks",
    }
)
# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_VERIFIER: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
# BASE64URL(SHA256(...)) without padding is always 43 characters.
_S256_CHALLENGE: Final = re.compile(r"[A-Za-z0-9\-_]{43}")
_TOKEN_BYTES: Final = 32


class OAuthError(Exception):
    """An RFC 6749 §5.2 error: `error` is the registered code, `description` for humans."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class BearerRejected(Exception):
    """An access token the API must refuse; the message never contains the token."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def s256(verifier: str) -> str:
    """The PKCE S256 transform: BASE64URL(SHA256(ASCII(code_verifier))), unpadded."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def is_s256_challenge(challenge: str) -> bool:
    return _S256_CHALLENGE.fullmatch(challenge) is not None


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    code_challenge: str
    member_id: int
    scopes: tuple[str, ...]
    expires_at: datetime
    used: bool = False
    family_id: str | None = None  # set once exchanged, so a replay can revoke it


@dataclass
class _Family:
    client_id: str
    member_id: int
    scopes: tuple[str, ...]
    revoked: bool = False


@dataclass
class _AccessToken:
    family_id: str
    expires_at: datetime


@dataclass
class _RefreshToken:
    family_id: str
    expires_at: datetime
    rotated: bool = False


@dataclass(frozen=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The RFC 6749 §5.1 success body."""
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "scope": " ".join(self.scopes),
        }


class OAuthServer:
    def __init__(
        self,
        *,
        access_token_ttl: int,
        refresh_token_ttl: int,
        code_ttl: int,
        clock: Clock | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.code_ttl = code_ttl
        # Public so tests can move time forward.
        self.clock: Clock = clock or (lambda: datetime.now(UTC))
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._codes: dict[str, _Code] = {}
            self._families: dict[str, _Family] = {}
            self._access: dict[str, _AccessToken] = {}
            self._refresh: dict[str, _RefreshToken] = {}
            self._grants = {"authorization_code": 0, "refresh_token": 0}
            self._token_requests = 0
            self._reuse_detected = 0

    # --- the authorization endpoint -----------------------------------------------------

    def issue_code(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        code_challenge: str,
        member_id: int,
        scopes: tuple[str, ...],
    ) -> str:
        code = secrets.token_urlsafe(_TOKEN_BYTES)
        with self._lock:
            self._codes[_digest(code)] = _Code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                code_challenge=code_challenge,
                member_id=member_id,
                scopes=scopes,
                expires_at=self.clock() + timedelta(seconds=self.code_ttl),
            )
        return code

    # --- the token endpoint -------------------------------------------------------------

    def count_token_request(self) -> None:
        with self._lock:
            self._token_requests += 1

    def exchange_code(
        self, *, client_id: str, code: str, redirect_uri: str | None, code_verifier: str | None
    ) -> IssuedTokens:
        """grant_type=authorization_code. The code is spent on its first presentation,
        even a failing one, so a wrong verifier cannot be retried against it."""
        with self._lock:
            grant = self._codes.get(_digest(code))
            if grant is None or grant.client_id != client_id:
                raise OAuthError("invalid_grant", "the authorization code is invalid")
            if grant.used:
                self._reuse_detected += 1
                if grant.family_id is not None:
                    self._families[grant.family_id].revoked = True
                raise OAuthError(
                    "invalid_grant",
                    "the authorization code was already used; its tokens are revoked",
                )
            grant.used = True
            if self.clock() >= grant.expires_at:
                raise OAuthError("invalid_grant", "the authorization code has expired")
            if redirect_uri != grant.redirect_uri:
                raise OAuthError(
                    "invalid_grant", "redirect_uri does not match the authorization request"
                )
            if code_verifier is None or _VERIFIER.fullmatch(code_verifier) is None:
                raise OAuthError(
                    "invalid_grant", "code_verifier must be 43-128 unreserved characters"
                )
            if not secrets.compare_digest(s256(code_verifier), grant.code_challenge):
                raise OAuthError("invalid_grant", "code_verifier does not match code_challenge")
            family_id = secrets.token_hex(8)
            grant.family_id = family_id
            self._families[family_id] = _Family(client_id, grant.member_id, grant.scopes)
            self._grants["authorization_code"] += 1
            return self._issue(family_id, grant.scopes)

    def refresh(
        self, *, client_id: str, refresh_token: str, scopes: tuple[str, ...] | None
    ) -> IssuedTokens:
        """grant_type=refresh_token with rotation: the presented token is spent and a new
        pair issued. A spent token presented again revokes the family (RFC 9700 §4.14.2).
        `scopes` may narrow the grant, never widen it."""
        with self._lock:
            stored = self._refresh.get(_digest(refresh_token))
            if stored is None or self._families[stored.family_id].client_id != client_id:
                raise OAuthError("invalid_grant", "the refresh token is invalid")
            family = self._families[stored.family_id]
            if family.revoked:
                raise OAuthError("invalid_grant", "the refresh token has been revoked")
            if stored.rotated:
                self._reuse_detected += 1
                family.revoked = True
                raise OAuthError(
                    "invalid_grant",
                    "the refresh token was already used; every token of this grant is revoked",
                )
            if self.clock() >= stored.expires_at:
                raise OAuthError("invalid_grant", "the refresh token has expired")
            granted = family.scopes
            if scopes is not None:
                if not scopes or not set(scopes) <= set(family.scopes):
                    raise OAuthError("invalid_scope", "scope exceeds what was granted")
                granted = tuple(s for s in family.scopes if s in scopes)
            stored.rotated = True
            self._grants["refresh_token"] += 1
            return self._issue(stored.family_id, granted)

    def _issue(self, family_id: str, scopes: tuple[str, ...]) -> IssuedTokens:
        """A new access + refresh token in the family. Caller holds the lock."""
        now = self.clock()
        access, refresh = secrets.token_urlsafe(_TOKEN_BYTES), secrets.token_urlsafe(_TOKEN_BYTES)
        self._access[_digest(access)] = _AccessToken(
            family_id, now + timedelta(seconds=self.access_token_ttl)
        )
        self._refresh[_digest(refresh)] = _RefreshToken(
            family_id, now + timedelta(seconds=self.refresh_token_ttl)
        )
        return IssuedTokens(access, refresh, self.access_token_ttl, scopes)

    # --- revocation (RFC 7009) ----------------------------------------------------------

    def revoke(self, *, client_id: str, token: str) -> None:
        """Revoke the family of an access or refresh token. Unknown tokens, and tokens of
        another client, are ignored: the answer must not reveal which tokens exist."""
        key = _digest(token)
        with self._lock:
            found = self._access.get(key) or self._refresh.get(key)
            if found is None:
                return
            family = self._families[found.family_id]
            if family.client_id == client_id:
                family.revoked = True

    # --- the resource server ------------------------------------------------------------

    def member_for_bearer(self, token: str) -> int:
        """The member an access token acts for, or `BearerRejected`."""
        with self._lock:
            stored = self._access.get(_digest(token))
            if stored is None:
                raise BearerRejected("The access token is invalid")
            family = self._families[stored.family_id]
            if family.revoked:
                raise BearerRejected("The access token has been revoked")
            if self.clock() >= stored.expires_at:
                raise BearerRejected("The access token has expired")
            return family.member_id

    # --- sandbox controls ---------------------------------------------------------------

    def expire_access_tokens(self) -> None:
        now = self.clock()
        with self._lock:
            for stored in self._access.values():
                stored.expires_at = min(stored.expires_at, now)

    def revoke_all(self) -> None:
        with self._lock:
            for family in self._families.values():
                family.revoked = True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            revoked = sum(1 for family in self._families.values() if family.revoked)
            return {
                "grants": dict(self._grants),
                "token_requests": self._token_requests,
                "reuse_detected": self._reuse_detected,
                "active_families": len(self._families) - revoked,
                "revoked_families": revoked,
            }
