from __future__ import annotations

from pydantic import Field, model_validator

from syntaskio_common.settings import SessionSettings


class GatewaySettings(SessionSettings):
    port: int = 8080
    auth_service_url: str = "http://127.0.0.1:8081"
    # The connector's internal API: sync status and history, sync now, command outcomes.
    connector_url: str = "http://127.0.0.1:8082"
    # Recent task feed events kept for streams that reconnect (`Last-Event-ID`); older
    # than that, a reconnecting dashboard loads its tasks again.
    live_buffer_size: int = Field(default=10_000, ge=100)
    # Live streams one user may hold open at once (per replica): a tab each, and a few
    # over; more would only tie up connections the others need.
    live_streams_per_user: int = Field(default=8, ge=1)
    # Per signed-in user and replica (a moving window); a dashboard uses a few a minute.
    user_rate_limit: str = "300/minute"
    # Counted before a session is verified, so a flood costs no signature checks or
    # database look-ups: per presented session token (above the user's rate, which a real session
    # meets first) and per client address (an office behind one address has many users).
    session_rate_limit: str = "600/minute"
    address_rate_limit: str = "3000/minute"
    # Requests not yet answered (a live stream counts until its headers are sent), per
    # presented token and per address: one client's burst waits for nobody but itself.
    # A browser sends at most 6 at once to a host.
    session_concurrent_requests: int = Field(default=8, ge=1)
    address_concurrent_requests: int = Field(default=64, ge=1)
    # Request bodies larger than this are refused with 413 before they are read.
    max_request_bytes: int = Field(default=64 * 1024, ge=1024)

    @model_validator(mode="after")
    def _defaults(self) -> GatewaySettings:
        self.require_real_secret("CONNECTOR_API_TOKEN", self.connector_api_token)
        # Sessions are auth-service's (after a sign-in with the company's provider).
        if not self.session_jwks_url:
            self.session_jwks_url = f"{self.auth_service_url.rstrip('/')}/.well-known/jwks.json"
        return self

    @property
    def secure_cookies(self) -> bool:
        return not self.is_development
