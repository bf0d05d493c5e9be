from __future__ import annotations

from limits import parse as parse_limit
from pydantic import Field, field_validator, model_validator

from syntaskio_common.settings import ConnectWiseEgressSettings


class ConnectorSettings(ConnectWiseEgressSettings):
    port: int = 8082
    auth_service_url: str = "http://127.0.0.1:8081"
    sync_interval_seconds: float = Field(default=300.0, gt=0)
    # How often each replica looks for due integrations and requests from other replicas.
    sync_poll_seconds: float = Field(default=5.0, gt=0)
    # The incremental window reaches back this far before the cursor (clock skew, and
    # records saved while the last listing ran).
    sync_overlap_seconds: float = Field(default=300.0, ge=0)
    reconcile_interval_seconds: float = Field(default=3600.0, gt=0)
    metadata_ttl_seconds: float = Field(default=3600.0, gt=0)
    # The state of the projects the member's tickets are in (one request per 100) — and,
    # with phases on, their phases (one request per project) — is read at most this
    # often; sooner when a Project callback names a project.
    project_refresh_seconds: float = Field(default=3600.0, ge=0)
    connectwise_requests_per_hour: int = Field(default=1000, ge=1)
    # A ticket's detail (notes, time, schedule) is read from ConnectWise again after
    # this long, sooner when a webhook, a write-back or a sync shows the ticket changed.
    ticket_detail_max_age_seconds: float = Field(default=300.0, gt=0)
    sync_lease_seconds: float = Field(default=120.0, gt=0)
    # Integrations one replica syncs at once: one slow ConnectWise delays only its slot.
    sync_concurrency: int = Field(default=8, ge=1, le=256)
    # A run still going after this long (a ConnectWise that does not answer) goes on
    # outside the slots, up to `sync_slow_runs` such runs per replica: servers that
    # hang delay the others' syncs by this much at most.
    sync_slow_after_seconds: float = Field(default=2.0, gt=0)
    sync_slow_runs: int = Field(default=32, ge=0, le=4096)
    # A run that has not finished by then is stopped and marked interrupted (the next run
    # reconciles): nothing can hold an integration's syncs, and its lease, for ever.
    sync_run_timeout_seconds: float = Field(default=900.0, gt=0)
    # Where ConnectWise can reach this service's webhook receiver (scheme, host and any
    # path prefix); unset turns webhooks off and the schedule alone keeps tasks fresh.
    webhook_base_url: str | None = None
    # Unknown signing keys are fetched at most this often per integration (forged
    # deliveries name made-up keys; each fetch is an API request).
    webhook_key_fetch_interval_seconds: float = Field(default=30.0, ge=0)
    # Deliveries taken per moving window (each replica on its own), per connection and
    # per source address; more are refused with 429 before any work ("N/second|minute").
    webhook_rate_per_integration: str = "300/minute"
    webhook_rate_per_source: str = "3000/minute"

    @field_validator("webhook_rate_per_integration", "webhook_rate_per_source")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        try:
            parse_limit(value)
        except ValueError:
            raise ValueError(f"not a rate such as 300/minute: {value!r}") from None
        return value

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ConnectorSettings:
        self.require_real_secret("INTERNAL_API_TOKEN", self.internal_api_token)
        self.require_real_secret("CONNECTOR_API_TOKEN", self.connector_api_token)
        if self.connector_api_token == self.internal_api_token and not self.is_development:
            raise ValueError("CONNECTOR_API_TOKEN must differ from INTERNAL_API_TOKEN")
        self.refuse_development_egress()
        return self
