from __future__ import annotations

from pydantic import model_validator

from syntaskio_common.settings import ConnectWiseEgressSettings


class ConnectorSettings(ConnectWiseEgressSettings):
    port: int = 8082
    auth_service_url: str = "http://127.0.0.1:8081"
    sync_interval_seconds: float = 300.0

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> ConnectorSettings:
        self.require_real_secret("INTERNAL_API_TOKEN", self.internal_api_token)
        self.refuse_development_egress()
        return self
