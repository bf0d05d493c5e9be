"""Signing in with the company's OpenID Connect provider, then issuing the system's own
session.

Authorization code + PKCE (S256) with `state` and `nonce`, through Authlib's client;
the provider's endpoints and keys come from its discovery document (whose `issuer` must
be the configured one). Each sign-in attempt is one `oidc_sign_ins` document, keyed by a
hash of its `state`, bound to the browser that started it (a random value in a cookie,
kept here hashed), single-use and short-lived: a tampered, replayed or expired `state`
finds nothing. The ID token must be signed by a key of the provider's JWKS and carry the
configured issuer, our client id as audience, an unexpired `exp`, an `iat` and our
`nonce`. Tenant and roles are read from configured claims (`ClaimMapping`); a user
whose token names no known tenant gets no session.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import urlencode

import httpx
from authlib.deprecate import AuthlibDeprecationWarning
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import Role, UserSession

# Authlib 1.9 nudges towards the httpx2 fork; see oauth.py.
warnings.filterwarnings(
    "ignore", "The httpx module is deprecated", category=AuthlibDeprecationWarning
)

from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError  # noqa: E402

# What providers sign ID tokens with (RS256 is the one every provider supports).
ID_TOKEN_ALGORITHMS: Final = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384"]
CLOCK_SKEW_SECONDS: Final = 60


class SignInRefused(Exception):
    """Why a sign-in gives no session; `reason` is a stable code, the message plain words
    for the person signing in (never a token or a secret)."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None


@dataclass(frozen=True)
class ClaimMapping:
    """Which claims name the tenant and the roles (e.g. Entra ID: `tid` and `roles`;
    Okta and Keycloak: a custom `tenant` claim and `groups`)."""

    tenant_claim: str
    # Claim value -> our tenant id; a value not here is an unknown tenant.
    tenants: dict[str, str]
    roles_claim: str
    admin_values: frozenset[str]
    technician_values: frozenset[str]
    # The role of a user whose roles claim names none of the values (None: refused).
    default_role: Role | None

    def session_of(self, claims: dict[str, Any]) -> UserSession:
        value = claims.get(self.tenant_claim)
        if not isinstance(value, str) or not value:
            raise SignInRefused(
                "no_tenant",
                "Your account does not say which company you belong to. Ask your "
                "administrator to add you to the Syntaskio application.",
                403,
            )
        tenant = self.tenants.get(value)
        if tenant is None:
            raise SignInRefused(
                "unknown_tenant",
                "Your company is not set up in Syntaskio. Ask your administrator.",
                403,
            )
        listed = claims.get(self.roles_claim)
        values = {listed} if isinstance(listed, str) else set(listed or ())
        roles = [
            role
            for role, names in (
                (Role.TECHNICIAN, self.technician_values),
                (Role.ADMIN, self.admin_values),
            )
            if values & names
        ]
        if not roles and self.default_role is not None:
            roles = [self.default_role]
        if not roles:
            raise SignInRefused(
                "no_role", "Your account has no Syntaskio role. Ask your administrator.", 403
            )
        email = claims.get("email") if claims.get("email_verified", True) is True else None
        return UserSession(
            user_id=str(claims["sub"]),
            tenant_id=tenant,
            name=claims.get("name") if isinstance(claims.get("name"), str) else None,
            email=email if isinstance(email, str) else None,
            roles=tuple(roles),
        )


def validate_id_token(
    token: str, keys: KeySet, *, issuer: str, client_id: str, nonce: str, now: float | None = None
) -> dict[str, Any]:
    """The ID token's claims, or SignInRefused: signature by one of `keys`, and
    `iss`, `aud` (and `azp` when there are several audiences), `exp`, `iat`, `sub` and
    `nonce` as OpenID Connect Core 3.1.3.7 asks."""
    try:
        decoded = jwt.decode(token, keys, algorithms=ID_TOKEN_ALGORITHMS)
        jwt.JWTClaimsRegistry(
            now=int(now if now is not None else time.time()),
            leeway=CLOCK_SKEW_SECONDS,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as error:
        raise SignInRefused(
            "invalid_id_token", "Your company's sign-in answered with a token we cannot trust."
        ) from error
    claims = dict(decoded.claims)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise SignInRefused(
            "invalid_id_token", "Your company's sign-in answered with a token we cannot trust."
        )
    return claims


class OidcProvider:
    """The provider's discovery document and keys, read once and cached (the keys again
    when a token names one we do not have, at most once a minute)."""

    def __init__(self, issuer: str, http: httpx.AsyncClient) -> None:
        self.issuer = issuer.rstrip("/")
        self._http = http
        self._metadata: ProviderMetadata | None = None
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def metadata(self) -> ProviderMetadata:
        if self._metadata is None:
            response = await self._http.get(f"{self.issuer}/.well-known/openid-configuration")
            response.raise_for_status()
            found = response.json()
            if str(found.get("issuer", "")).rstrip("/") != self.issuer:
                raise SignInRefused(
                    "provider_misconfigured",
                    "The sign-in provider is not the one configured.",
                    502,
                )
            self._metadata = ProviderMetadata(
                issuer=str(found["issuer"]),
                authorization_endpoint=str(found["authorization_endpoint"]),
                token_endpoint=str(found["token_endpoint"]),
                jwks_uri=str(found["jwks_uri"]),
                end_session_endpoint=found.get("end_session_endpoint"),
            )
        return self._metadata

    async def keys(self, *, refresh: bool = False) -> KeySet:
        stale = refresh and time.monotonic() - self._keys_at > 60
        if self._keys is None or stale:
            response = await self._http.get((await self.metadata()).jwks_uri)
            response.raise_for_status()
            self._keys = KeySet.import_key_set(response.json())
            self._keys_at = time.monotonic()
        return self._keys


@dataclass(frozen=True)
class SignInStarted:
    authorization_url: str
    binding: str  # the browser keeps it (HttpOnly cookie) and hands it back at the callback
    expires_in: int


@dataclass(frozen=True)
class SignedIn:
    session: UserSession
    return_to: str


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class SignIn:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        provider: OidcProvider,
        mapping: ClaimMapping,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: str,
        post_logout_redirect_uri: str,
        ttl: timedelta,
    ) -> None:
        self._attempts = db["oidc_sign_ins"]
        self._provider = provider
        self._mapping = mapping
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._scopes = scopes
        self._post_logout_redirect_uri = post_logout_redirect_uri
        self._ttl = ttl

    async def create_indexes(self) -> None:
        await self._attempts.create_index("expires_at", expireAfterSeconds=0, name="expiry")

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            redirect_uri=self._redirect_uri,
            scope=self._scopes,
            code_challenge_method="S256",
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
        )

    async def start(self, return_to: str) -> SignInStarted:
        metadata = await self._provider.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier, binding = secrets.token_urlsafe(64), secrets.token_urlsafe(32)
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                metadata.authorization_endpoint, state=state, nonce=nonce, code_verifier=verifier
            )
        await self._attempts.insert_one(
            {
                "_id": _digest(state),
                "binding": _digest(binding),
                "nonce": nonce,
                "code_verifier": verifier,
                "return_to": return_to,
                "expires_at": datetime.now(UTC) + self._ttl,
            }
        )
        return SignInStarted(url, binding, int(self._ttl.total_seconds()))

    async def finish(
        self, *, state: str, code: str | None, error: str | None, binding: str | None
    ) -> SignedIn:
        # Single use: the attempt is gone whatever happens next.
        attempt = await self._attempts.find_one_and_delete({"_id": _digest(state)})
        if error is not None and attempt is None:
            # Some providers leave `state` off an error answer: nothing to match, no session.
            raise SignInRefused("denied", "Sign-in was cancelled at your company's sign-in page.")
        if attempt is None or attempt["expires_at"].replace(tzinfo=UTC) <= datetime.now(UTC):
            raise SignInRefused(
                "expired_state", "That sign-in expired or was already used. Please start again."
            )
        if binding is None or not secrets.compare_digest(attempt["binding"], _digest(binding)):
            raise SignInRefused(
                "other_browser",
                "That sign-in was started in another browser. Please start again here.",
            )
        if error is not None or not code:
            raise SignInRefused("denied", "Sign-in was cancelled at your company's sign-in page.")
        metadata = await self._provider.metadata()
        try:
            async with self._client() as client:
                token = await client.fetch_token(
                    metadata.token_endpoint,
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=attempt["code_verifier"],
                )
        except (OAuthError, httpx.HTTPError) as failure:
            raise SignInRefused(
                "exchange_failed", "Your company's sign-in did not complete. Please try again."
            ) from failure
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("invalid_id_token", "Your company's sign-in sent no ID token.")
        claims = await self._validated(id_token, attempt["nonce"])
        return SignedIn(self._mapping.session_of(claims), attempt["return_to"])

    async def _validated(self, id_token: str, nonce: str) -> dict[str, Any]:
        issuer = (await self._provider.metadata()).issuer

        def validated(keys: KeySet) -> dict[str, Any]:
            return validate_id_token(
                id_token, keys, issuer=issuer, client_id=self._client_id, nonce=nonce
            )

        try:
            return validated(await self._provider.keys())
        except SignInRefused:
            # The provider may have rotated its keys since they were read.
            return validated(await self._provider.keys(refresh=True))

    async def end_session_url(self) -> str | None:
        """Where the browser goes to end the provider's session too (RP-initiated
        logout), if the provider offers it."""
        endpoint = (await self._provider.metadata()).end_session_endpoint
        if not endpoint:
            return None
        query = {
            "client_id": self._client_id,
            "post_logout_redirect_uri": self._post_logout_redirect_uri,
        }
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(query)}"
