"""Signing in with an OpenID Connect provider: which ID tokens are trusted, and how the
tenant and roles are read from claims (the whole flow against a real provider is in
tests/e2e/test_sign_in.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from syntaskio_auth.sign_in import ClaimMapping, SignInRefused, validate_id_token
from syntaskio_common.sessions import Role

ISSUER = "https://login.example.com"
CLIENT = "syntaskio"
NONCE = "n-0S6_WzA2Mj"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})
KEYS = KeySet([KEY])


def id_token(key: RSAKey = KEY, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": CLIENT,
        "sub": "alice@acme.example",
        "iat": now,
        "exp": now + 300,
        "nonce": NONCE,
    } | changes
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def validate(token: str) -> dict[str, Any]:
    return validate_id_token(token, KEYS, issuer=ISSUER, client_id=CLIENT, nonce=NONCE)


def test_a_token_from_the_provider_for_us_with_our_nonce_is_trusted() -> None:
    assert validate(id_token())["sub"] == "alice@acme.example"
    # Several audiences: trusted when we are the authorized party.
    assert validate(id_token(aud=[CLIENT, "other"], azp=CLIENT))["aud"] == [CLIENT, "other"]


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (id_token(nonce="another-login"), "wrong nonce"),
        (id_token(nonce=None), "no nonce"),
        (id_token(iss="https://evil.example"), "wrong issuer"),
        (id_token(aud="another-client"), "for another client"),
        (id_token(aud=[CLIENT, "other"]), "several audiences, no azp"),
        (id_token(aud=[CLIENT, "other"], azp="other"), "another authorized party"),
        (id_token(exp=int(time.time()) - 120), "expired"),
        (id_token(iat=None), "no iat"),
        (id_token(sub=None), "no subject"),
        (id_token(RSAKey.generate_key(2048, parameters={"kid": "k1"})), "signed by another key"),
    ],
)
def test_other_tokens_are_refused(token: str, why: str) -> None:
    with pytest.raises(SignInRefused) as refused:
        validate(token)
    assert refused.value.reason == "invalid_id_token", why
    assert token not in refused.value.message


@pytest.mark.filterwarnings("ignore:JWS algorithm")
def test_an_unsigned_token_is_refused() -> None:
    header = {"alg": "none"}
    claims = {"iss": ISSUER, "aud": CLIENT, "sub": "x", "iat": 1, "exp": 2**31, "nonce": NONCE}
    unsigned = jwt.encode(header, claims, None, algorithms=["none"])
    with pytest.raises(SignInRefused):
        validate(unsigned)


MAPPING = ClaimMapping(
    tenant_claim="tid",
    tenants={"0b6c-acme": "acme-msp"},
    roles_claim="groups",
    admin_values=frozenset({"syntaskio-admins"}),
    technician_values=frozenset({"syntaskio-technicians"}),
    default_role=Role.TECHNICIAN,
)


def claims(**changes: Any) -> dict[str, Any]:
    base = {"sub": "alice", "tid": "0b6c-acme", "name": "Alice", "email": "alice@acme.example"}
    return {k: v for k, v in (base | changes).items() if v is not None}


def test_tenant_and_roles_come_from_the_configured_claims() -> None:
    session = MAPPING.session_of(claims(groups=["syntaskio-admins", "everyone"]))
    assert (session.user_id, session.tenant_id, session.roles) == (
        "alice",
        "acme-msp",
        (Role.ADMIN,),
    )
    both = MAPPING.session_of(claims(groups=["syntaskio-technicians", "syntaskio-admins"]))
    assert both.roles == (Role.TECHNICIAN, Role.ADMIN)
    assert MAPPING.session_of(claims(groups="syntaskio-admins")).roles == (Role.ADMIN,)
    assert MAPPING.session_of(claims()).roles == (Role.TECHNICIAN,)  # the default role
    assert MAPPING.session_of(claims()).email == "alice@acme.example"
    assert MAPPING.session_of(claims(email_verified=False)).email is None


@pytest.mark.parametrize(
    ("token_claims", "reason"),
    [
        (claims(tid=None), "no_tenant"),
        (claims(tid=""), "no_tenant"),
        (claims(tid=["0b6c-acme"]), "no_tenant"),
        (claims(tid="initech"), "unknown_tenant"),
    ],
)
def test_a_user_without_a_known_tenant_gets_no_session(
    token_claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(SignInRefused) as refused:
        MAPPING.session_of(token_claims)
    assert (refused.value.reason, refused.value.status) == (reason, 403)
    assert "administrator" in refused.value.message


def test_without_a_default_role_a_user_with_no_role_is_refused() -> None:
    strict = ClaimMapping(**{**MAPPING.__dict__, "default_role": None})
    with pytest.raises(SignInRefused) as refused:
        strict.session_of(claims(groups=["everyone"]))
    assert refused.value.reason == "no_role"
    assert strict.session_of(claims(groups=["syntaskio-technicians"])).roles == (Role.TECHNICIAN,)
