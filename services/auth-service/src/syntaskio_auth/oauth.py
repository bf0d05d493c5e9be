"""The OAuth2 client side (authorization code + PKCE S256, refresh, revocation), via
Authlib's httpx client. Provider differences are configuration (`OAuthProfile`)."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

# Authlib 1.9 nudges towards the httpx2 fork; the whole stack (and our guarded transport)
# is on httpx, which Authlib still supports. Silence only that one notice.
warnings.filterwarnings(
    "ignore", "The httpx module is deprecated", category=AuthlibDeprecationWarning
)

from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError  # noqa: E402

from syntaskio_auth.settings import OAuthProfile  # noqa: E402
from syntaskio_common.http import timeout as http_timeout  # noqa: E402

__all__ = ["OAuthError", "OAuthProvider", "TokenSet", "new_code_verifier", "new_state"]

# Refresh tokens ConnectWise (and the sandbox) rotate; an access token lives about an hour.
_DEFAULT_EXPIRES_IN = 3600


def new_state() -> str:
    return secrets.token_urlsafe(32)


def new_code_verifier() -> str:
    """RFC 7636: 43-128 characters of the unreserved set; 64 random bytes give 86."""
    return secrets.token_urlsafe(64)


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime
    scopes: list[str]

    @classmethod
    def from_response(cls, token: dict[str, Any], previous_refresh: str | None) -> TokenSet:
        expires_in = int(token.get("expires_in") or _DEFAULT_EXPIRES_IN)
        return cls(
            access_token=str(token["access_token"]),
            # A provider that doesn't rotate refresh tokens keeps the one we had.
            refresh_token=token.get("refresh_token") or previous_refresh,
            expires_at=datetime.now(UTC) + timedelta(seconds=expires_in),
            scopes=str(token.get("scope") or "").split(),
        )


class OAuthProvider:
    """One configured provider, talking to one site's endpoints through `transport`
    (the SSRF-guarded one in production)."""

    def __init__(
        self,
        profile: OAuthProfile,
        redirect_uri: str,
        transport_factory: Callable[[], httpx.AsyncBaseTransport],
    ) -> None:
        self.profile = profile
        self._redirect_uri = redirect_uri
        self._transport_factory = transport_factory

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.profile.client_id,
            client_secret=self.profile.client_secret.get_secret_value(),
            token_endpoint_auth_method=self.profile.token_endpoint_auth_method,
            revocation_endpoint_auth_method=self.profile.token_endpoint_auth_method,
            redirect_uri=self._redirect_uri,
            code_challenge_method="S256",
            transport=self._transport_factory(),
            timeout=http_timeout(),
            follow_redirects=False,
        )

    def _url(self, template: str, api_base_url: str) -> str:
        return template.format(api_base_url=api_base_url)

    def authorization_url(self, api_base_url: str, state: str, code_verifier: str) -> str:
        client = self._client()
        url, _ = client.create_authorization_url(
            self._url(self.profile.authorize_url, api_base_url),
            state=state,
            code_verifier=code_verifier,
            scope=" ".join(self.profile.scopes),
        )
        return str(url)

    async def exchange_code(self, api_base_url: str, code: str, code_verifier: str) -> TokenSet:
        async with self._client() as client:
            token = await client.fetch_token(
                self._url(self.profile.token_url, api_base_url),
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
        return TokenSet.from_response(dict(token), None)

    async def refresh(self, api_base_url: str, refresh_token: str) -> TokenSet:
        async with self._client() as client:
            token = await client.refresh_token(
                self._url(self.profile.token_url, api_base_url), refresh_token=refresh_token
            )
        return TokenSet.from_response(dict(token), refresh_token)

    async def revoke(self, api_base_url: str, refresh_token: str) -> bool:
        """Revoke the grant (RFC 7009); False when the provider has no revocation endpoint
        or refused. Revoking the refresh token ends its access tokens too."""
        if not self.profile.revocation_url:
            return False
        async with self._client() as client:
            response = await client.revoke_token(
                self._url(self.profile.revocation_url, api_base_url),
                token=refresh_token,
                token_type_hint="refresh_token",  # noqa: S106 - a hint name, not a secret
            )
        return bool(response.is_success)
