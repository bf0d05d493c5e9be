"""Sessions are short-lived and renewed while used: a renewal is a new token of the same
session (same id, sign-in time and end), never past the session's maximum length."""

from __future__ import annotations

import time
from unittest.mock import patch

import pytest

from syntaskio_auth.session_issuer import SessionIssuer
from syntaskio_common.sessions import InvalidSession, Role, UserSession

ISSUER = "https://auth.example"


def issuer(ttl: int = 600, max_age: int = 3600) -> SessionIssuer:
    return SessionIssuer(ISSUER, ttl, max_age_seconds=max_age)


def test_a_renewed_token_is_the_same_session_for_longer() -> None:
    sessions = issuer()
    person = UserSession(user_id="dana", tenant_id="acme", roles=(Role.ADMIN,), email="d@a.example")
    first = sessions.issue(person)
    assert first.expires_in == 600
    signed_in = sessions.verify(first.token)
    assert signed_in.session_id is not None
    assert signed_in.ends_at is not None
    assert signed_in.signed_in_at is not None
    assert (signed_in.ends_at - signed_in.signed_in_at).total_seconds() == 3600
    later = time.time() + 300
    with patch("time.time", return_value=later):
        renewed = sessions.renew(signed_in)
        again = sessions.verify(renewed.token)
    assert again.model_dump(exclude={"expires_at"}) == signed_in.model_dump(exclude={"expires_at"})
    assert again.expires_at is not None
    assert signed_in.expires_at is not None
    assert (again.expires_at - signed_in.expires_at).total_seconds() == pytest.approx(300, abs=1)


def test_no_renewal_goes_past_the_sessions_end() -> None:
    sessions = issuer(ttl=600, max_age=900)
    session = sessions.verify(sessions.issue(UserSession(user_id="u", tenant_id="t")).token)
    assert session.ends_at is not None
    near_the_end = session.ends_at.timestamp() - 100
    with patch("time.time", return_value=near_the_end):
        last = sessions.renew(session)
    assert last.expires_in == 100  # cut to the session's end, not another ttl
    with (
        patch("time.time", return_value=session.ends_at.timestamp()),
        pytest.raises(InvalidSession, match="maximum length"),
    ):
        sessions.renew(session)


def test_a_session_without_its_history_cannot_be_renewed() -> None:
    """Tokens from before renewals existed carry no sign-in time or end."""
    old = UserSession(user_id="u", tenant_id="t", session_id="jti-1")
    with pytest.raises(InvalidSession, match="sign in again"):
        issuer().renew(old)
