"""Services refuse to start in production with development switches or missing secrets;
requests that could bend a URL are refused."""

import base64
import json
import os
from typing import Any

import pytest
from pydantic import ValidationError

from syntaskio_auth.settings import AuthSettings, OAuthProfile
from syntaskio_common.connection_requests import OAuthStartRequest
from syntaskio_connector.settings import ConnectorSettings
from syntaskio_gateway.settings import GatewaySettings

REAL_KEYS = json.dumps({"2026-11": base64.b64encode(os.urandom(32)).decode()})
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "internal_api_token": "a-long-random-internal-token",
    "vault_keys": REAL_KEYS,
    "vault_primary_key_id": "2026-11",
    "session_signing_key": json.dumps({"kty": "EC", "crv": "P-256", "x": "…", "d": "…"}),
    "oidc_issuer": "https://login.example.com",
    "oidc_client_id": "syntaskio",
    "oidc_client_secret": "a-real-client-secret",
    "oidc_tenants": {"0b6c…": "acme-msp"},
    "connectwise_client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
}


def test_a_complete_production_configuration_is_accepted() -> None:
    settings = AuthSettings(**PRODUCTION)
    assert settings.keyring()["2026-11"]
    assert "api-na.myconnectwise.net" in settings.site_policy().allowed_hosts
    assert not settings.site_policy().allow_private_network


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        ({"vault_keys": ""}, "VAULT_KEYS"),
        ({"vault_keys": "changeme"}, "VAULT_KEYS"),
        ({"internal_api_token": "development-only"}, "INTERNAL_API_TOKEN"),
        ({"session_signing_key": ""}, "SESSION_SIGNING_KEY"),
        ({"oidc_issuer": ""}, "OIDC_ISSUER"),
        ({"oidc_issuer": "http://login.example.com"}, "OIDC_ISSUER"),
        ({"oidc_client_secret": "changeme"}, "OIDC_CLIENT_SECRET"),
        ({"oidc_tenants": {}}, "OIDC_TENANTS"),
        ({"connectwise_client_id": ""}, "CONNECTWISE_CLIENT_ID"),
        ({"dev_login_enabled": True}, "DEV_LOGIN_ENABLED"),
        ({"connectwise_allow_private_network": True}, "development-only"),
        ({"connectwise_allow_http": True}, "development-only"),
    ],
)
def test_production_refuses_unsafe_settings(override: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        AuthSettings(**{**PRODUCTION, **override})


def test_development_may_run_without_real_secrets() -> None:
    settings = AuthSettings(environment="development", dev_login_enabled=True)
    assert settings.dev_login_enabled


def test_an_oauth_provider_without_a_real_client_secret_is_switched_off() -> None:
    assert not OAuthProfile(client_id="x").enabled
    assert not OAuthProfile(client_id="x", client_secret="changeme").enabled  # type: ignore[arg-type]
    assert not OAuthProfile(client_secret="a-real-secret").enabled  # type: ignore[arg-type]
    assert OAuthProfile(client_id="x", client_secret="a-real-secret").enabled  # type: ignore[arg-type]


def test_providers_are_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "OAUTH_PROVIDERS",
        json.dumps(
            {
                "connectwise": {"client_id": "a", "client_secret": "b-secret"},
                "otherpsa": {
                    "authorize_url": "https://idp.example/authorize",
                    "token_url": "https://idp.example/token",
                    "revocation_url": None,
                    "scopes": ["tickets.read"],
                    "client_id": "c",
                    "client_secret": "d-secret",
                },
            }
        ),
    )
    settings = AuthSettings()
    assert settings.oauth_providers["otherpsa"].scopes == ("tickets.read",)
    assert settings.oauth_providers["connectwise"].token_url.endswith("system/oauth/token")
    assert "b-secret" not in repr(settings)


@pytest.mark.parametrize("company_id", [".", "..", ".hidden", "a/b", "a b", ""])
def test_company_ids_that_could_change_a_url_path_are_refused(company_id: str) -> None:
    with pytest.raises(ValidationError):
        OAuthStartRequest(site="api-na.myconnectwise.net", company_id=company_id)


def test_the_gateway_verifies_auth_services_sessions_by_default() -> None:
    settings = GatewaySettings(environment="production", connector_api_token="a-real-token")
    assert settings.session_jwks_url == "http://127.0.0.1:8081/.well-known/jwks.json"
    assert settings.secure_cookies


def test_the_gateway_needs_its_own_connector_token_in_production() -> None:
    jwks = "https://login.example.com/jwks"
    with pytest.raises(ValidationError, match="CONNECTOR_API_TOKEN"):
        GatewaySettings(environment="production", session_jwks_url=jwks)
    # The back-end services' token is not the gateway's: it is never read.
    with pytest.raises(ValidationError, match="CONNECTOR_API_TOKEN"):
        GatewaySettings(
            environment="production", session_jwks_url=jwks, internal_api_token="a-real-token"
        )


def test_the_connector_refuses_one_token_for_both_callers_in_production() -> None:
    production = {
        "environment": "production",
        "internal_api_token": "a-long-random-internal-token",
        "connector_api_token": "a-long-random-internal-token",
    }
    with pytest.raises(ValidationError, match="must differ"):
        ConnectorSettings(**production)
    assert ConnectorSettings(**{**production, "connector_api_token": "another-random-token"})
