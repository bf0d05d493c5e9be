"""Sandbox settings: environment variables prefixed `CW_SANDBOX_`, overridable from the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Final

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The clientId GUID every local tool uses; a real one is registered per vendor product.
DEV_CLIENT_ID: Final = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
MAX_TICKETS: Final = 100_000
# Fleet mode's ceilings: companies (ids `fleet00001`…`fleet99999`) and members across
# all of them (each company holds its own records once used).
MAX_FLEET_COMPANIES: Final = 99_999
MAX_FLEET_MEMBERS: Final = 200_000
DEV_OAUTH_CLIENT_SECRET: Final = "sandbox-oauth-client-secret"  # noqa: S105 - a dev default


def start_of_today() -> datetime:
    """Seeded dates end here: in the past (so live changes sort after them), yet recent."""
    now = datetime.now(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CW_SANDBOX_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=0, le=65535)
    tickets: int = Field(default=300, ge=0, le=MAX_TICKETS)
    # More technicians beyond the named ones (`tech001`, …), for a company with a large
    # team; 0 keeps the default dataset byte-identical. With some, tickets are drawn over
    # all of them, so which tickets are whose changes.
    extra_technicians: int = Field(default=0, ge=0, le=500)
    seed: int = 42
    company_id: str = "syntaskio"
    codebase: str = "v2025_1/"
    client_ids: Annotated[tuple[str, ...], NoDecode] = (DEV_CLIENT_ID,)
    # The instant the seeded history ends; same seed + same anchor = byte-identical data.
    anchor: datetime = Field(default_factory=start_of_today)
    log_level: str = "info"
    # The one OAuth2 client the authorization server knows (confidential: id + secret).
    oauth_client_id: str = DEV_CLIENT_ID
    oauth_client_name: str = "Syntaskio"
    oauth_client_secret: str = Field(default=DEV_OAUTH_CLIENT_SECRET, repr=False)
    # Exact-match redirect URIs (RFC 9700 §2.1); none registered = every authorize fails.
    oauth_redirect_uris: Annotated[tuple[str, ...], NoDecode] = ()
    oauth_access_token_ttl: int = Field(default=3600, ge=1)
    oauth_refresh_token_ttl: int = Field(default=30 * 24 * 3600, ge=1)
    oauth_code_ttl: int = Field(default=60, ge=1)
    # Upper bound on impersonation keys minted by POST /system/members/{id}/tokens.
    member_token_ttl: int = Field(default=3600, ge=1)
    # Callback deliveries: ConnectWise tries each three times (two retries), 5 s apiece.
    callback_timeout: float = Field(default=5.0, gt=0, le=60)
    callback_attempts: int = Field(default=3, ge=1, le=10)
    callback_retry_delay: float = Field(default=1.0, ge=0, le=60)
    # Fleet mode (`fleet.py`): this many more companies on the same host, `fleet00001`,
    # …, each with its own members, keys and open tickets; 0 (the default) = off.
    fleet_companies: int = Field(default=0, ge=0, le=MAX_FLEET_COMPANIES)
    fleet_members_per_company: int = Field(default=10, ge=1, le=1000)
    fleet_tickets_per_member: int = Field(default=3, ge=0, le=50)
    # Companies whose server is down (chosen from the seed): their requests hang until
    # the client gives up, or answer 504 after `fleet_down_hang_seconds`.
    fleet_down_fraction: float = Field(default=0.0, ge=0, le=1)
    fleet_down_hang_seconds: float = Field(default=600.0, gt=0, le=86_400)
    # Response latency of the ConnectWise API (not `/_sandbox`): every request waits
    # `latency_ms`, except a `latency_tail_fraction` of them, which wait `latency_tail_ms`.
    latency_ms: float = Field(default=0.0, ge=0, le=60_000)
    latency_tail_ms: float = Field(default=0.0, ge=0, le=600_000)
    latency_tail_fraction: float = Field(default=0.0, ge=0, le=1)

    @field_validator("codebase")
    @classmethod
    def _codebase_shape(cls, value: str) -> str:
        """Stored as the real `Codebase` field is: no leading slash, one trailing slash."""
        value = value.strip().strip("/")
        if not value or "/" in value:
            raise ValueError("codebase must be a single path segment such as 'v2025_1/'")
        return value + "/"

    @field_validator("client_ids", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        if isinstance(value, list | tuple):
            return tuple(str(part).strip().lower() for part in value if str(part).strip())
        return value

    @field_validator("oauth_redirect_uris", mode="before")
    @classmethod
    def _uri_list(cls, value: object) -> object:
        """Comma-separated like `client_ids`, but case kept: matching is exact."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list | tuple):
            return tuple(str(part).strip() for part in value if str(part).strip())
        return value

    @field_validator("oauth_client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        return value.strip()

    @field_validator("anchor")
    @classmethod
    def _anchor_utc(cls, value: datetime) -> datetime:
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(microsecond=0)

    @model_validator(mode="after")
    def _fleet_and_latency(self) -> Settings:
        members = self.fleet_companies * self.fleet_members_per_company
        if members > MAX_FLEET_MEMBERS:
            raise ValueError(
                f"fleet_companies x fleet_members_per_company is {members}; "
                f"at most {MAX_FLEET_MEMBERS}"
            )
        home = self.company_id.lower()
        if self.fleet_companies and home.startswith("fleet") and home[5:].isdigit():
            raise ValueError("company_id must not look like a fleet company id (fleetNNNNN)")
        if self.latency_tail_fraction > 0 and self.latency_tail_ms < self.latency_ms:
            raise ValueError("latency_tail_ms must be at least latency_ms: it is the slow tail")
        return self

    @property
    def api_prefix(self) -> str:
        """`/v2025_1/apis/3.0` — where the REST API lives on this host."""
        return f"/{self.codebase}apis/3.0"
