"""Session tokens from an OIDC identity provider: issuer, audience, expiry and key
rotation at the provider (JWKS fetched over HTTP, cached, refetched for a new key)."""

import time
import uuid
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from syntaskio_common.sessions import InvalidSession, JwksSessionVerifier

ISSUER = "https://login.example.com/"
AUDIENCE = "syntaskio"


class IdentityProvider:
    """An OIDC provider's signing side: keys, a JWKS endpoint, issued tokens."""

    def __init__(self) -> None:
        self.keys = [ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex})]
        self.jwks_requests = 0

    def rotate(self) -> None:
        self.keys.append(ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex}))

    def token(self, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alex",
            "tenant_id": "acme",
            "iat": now,
            "exp": now + 300,
            "jti": "session-1",
        } | overrides
        claims = {name: value for name, value in claims.items() if value is not None}
        key = self.keys[-1]
        return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)

    def jwks(self, _: httpx.Request) -> httpx.Response:
        self.jwks_requests += 1
        public = KeySet(self.keys).as_dict(private=False)
        return httpx.Response(200, json=public)


@pytest.fixture
def provider() -> IdentityProvider:
    return IdentityProvider()


def verifier(provider: IdentityProvider, min_refresh: float = 30.0) -> JwksSessionVerifier:
    http = httpx.AsyncClient(transport=httpx.MockTransport(provider.jwks))
    return JwksSessionVerifier(
        "https://login.example.com/jwks", ISSUER, http, audience=AUDIENCE, min_refresh=min_refresh
    )


async def test_a_valid_token_gives_the_user_tenant_and_session(provider: IdentityProvider) -> None:
    session = await verifier(provider).verify(provider.token())
    assert (session.user_id, session.tenant_id, session.session_id) == ("alex", "acme", "session-1")


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example.com/"},
        {"aud": "another-app"},
        {"exp": int(time.time()) - 60},
        {"tenant_id": ""},
        {"sub": ""},
        {"exp": int(time.time()) + 100 * 365 * 24 * 3600},
        {"iat": int(time.time()) - 2 * 24 * 3600, "exp": int(time.time()) + 60},
        {"iat": None},
    ],
    ids=[
        "wrong-issuer",
        "wrong-audience",
        "expired",
        "no-tenant",
        "no-subject",
        "a-century",
        "two-days",
        "no-issue-time",
    ],
)
async def test_tokens_that_are_not_for_us_are_refused(
    provider: IdentityProvider, claims: dict[str, Any]
) -> None:
    with pytest.raises(InvalidSession):
        await verifier(provider, min_refresh=0).verify(provider.token(**claims))


async def test_a_token_signed_by_someone_else_is_refused(provider: IdentityProvider) -> None:
    impostor = IdentityProvider()
    with pytest.raises(InvalidSession):
        await verifier(provider, min_refresh=0).verify(impostor.token())


async def test_keys_are_cached_and_a_rotated_key_is_picked_up(provider: IdentityProvider) -> None:
    sessions = verifier(provider, min_refresh=0)
    for _ in range(3):
        await sessions.verify(provider.token())
    assert provider.jwks_requests == 1
    provider.rotate()
    assert (await sessions.verify(provider.token())).user_id == "alex"
    assert provider.jwks_requests == 2


async def test_unknown_keys_do_not_hammer_the_provider(provider: IdentityProvider) -> None:
    sessions = verifier(provider, min_refresh=60)
    await sessions.verify(provider.token())
    for _ in range(5):
        with pytest.raises(InvalidSession):
            await sessions.verify(IdentityProvider().token())
    assert provider.jwks_requests == 1


async def test_a_day_long_token_is_the_longest_accepted(provider: IdentityProvider) -> None:
    now = int(time.time())
    day = await verifier(provider).verify(provider.token(iat=now, exp=now + 24 * 3600))
    assert day.user_id == "alex"
