"""Settings from `CW_SANDBOX_*` variables and the command line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from connectwise_sandbox import DEV_CLIENT_ID, Settings
from connectwise_sandbox.__main__ import parse_settings


def test_defaults() -> None:
    settings = parse_settings([])
    assert (settings.host, settings.port, settings.tickets, settings.seed) == (
        "127.0.0.1",
        8090,
        300,
        42,
    )
    assert settings.company_id == "syntaskio"
    assert settings.codebase == "v2025_1/"
    assert settings.api_prefix == "/v2025_1/apis/3.0"
    assert settings.client_ids == (DEV_CLIENT_ID,)
    assert settings.anchor.hour == 0
    assert settings.anchor.tzinfo is not None


def test_environment_then_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SANDBOX_TICKETS", "1000")
    monkeypatch.setenv("CW_SANDBOX_SEED", "7")
    monkeypatch.setenv("CW_SANDBOX_CODEBASE", "/v2024_2")
    monkeypatch.setenv(
        "CW_SANDBOX_CLIENT_IDS", f"{DEV_CLIENT_ID}, ABCDEF00-0000-0000-0000-000000000001"
    )
    settings = parse_settings(["--seed", "9", "--port", "9999", "--company-id", "acme"])
    assert settings.tickets == 1000
    assert settings.seed == 9
    assert settings.port == 9999
    assert settings.company_id == "acme"
    assert settings.codebase == "v2024_2/"
    assert settings.client_ids == (DEV_CLIENT_ID, "abcdef00-0000-0000-0000-000000000001")


@pytest.mark.parametrize("tickets", [-1, 100_001])
def test_ticket_count_is_bounded(tickets: int) -> None:
    with pytest.raises(ValidationError):
        Settings(tickets=tickets)


def test_codebase_must_be_one_segment() -> None:
    with pytest.raises(ValidationError):
        Settings(codebase="a/b")


def test_oauth_defaults_and_the_secret_stays_out_of_repr() -> None:
    settings = parse_settings([])
    assert settings.oauth_client_id == DEV_CLIENT_ID
    assert settings.oauth_redirect_uris == ()
    assert (settings.oauth_access_token_ttl, settings.oauth_code_ttl) == (3600, 60)
    assert settings.oauth_refresh_token_ttl == 30 * 24 * 3600
    assert settings.member_token_ttl == 3600
    assert settings.oauth_client_secret not in repr(settings)


def test_oauth_redirect_uris_from_environment_and_command_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "CW_SANDBOX_OAUTH_REDIRECT_URIS", "http://a.test/CallBack, http://b.test/cb?x=1"
    )
    monkeypatch.setenv("CW_SANDBOX_OAUTH_CLIENT_SECRET", "from-env")
    settings = parse_settings([])
    # Case kept: redirect URIs match exactly.
    assert settings.oauth_redirect_uris == ("http://a.test/CallBack", "http://b.test/cb?x=1")
    assert settings.oauth_client_secret == "from-env"
    settings = parse_settings(
        ["--oauth-redirect-uri", "http://c.test/cb", "--oauth-redirect-uri", "http://d.test/cb"]
    )
    assert settings.oauth_redirect_uris == ("http://c.test/cb", "http://d.test/cb")


@pytest.mark.parametrize("field", ["oauth_access_token_ttl", "oauth_code_ttl", "member_token_ttl"])
def test_token_lifetimes_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError):
        Settings(**{field: 0})
