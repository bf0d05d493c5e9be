"""One request id follows a request through the services' logs: the gateway keeps the
caller's well-formed `X-Request-ID` (or makes one), returns it, writes it on its access
line with the route's template and the tenant, and sends it on to auth-service, whose
lines for the same request carry it too."""

from __future__ import annotations

import json
import uuid
from typing import Any

from e2e_helpers import eventually, signed_in

from syntaskio_devstack.stack import EmbeddedStack


def log_lines(system: EmbeddedStack, service: str, request_id: str) -> list[dict[str, Any]]:
    path = system.config.data_dir / "logs" / f"{service}.log"
    found = []
    for line in path.read_text().splitlines():
        if request_id in line:
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def test_a_request_id_follows_the_request_from_the_gateway_to_auth_service(
    system: EmbeddedStack,
) -> None:
    tenant = f"ids-{uuid.uuid4().hex[:8]}"
    with signed_in(system, "rhea@ids.example", tenant) as browser:
        request_id = f"e2e-{uuid.uuid4().hex}"
        listed = browser.get("/api/v1/integrations", headers={"X-Request-ID": request_id})
        assert listed.status_code == 200, listed.text
        assert listed.headers["X-Request-ID"] == request_id
        made = browser.get("/api/v1/integrations", headers={"X-Request-ID": "not ok!"})
        assert made.headers["X-Request-ID"] != "not ok!"

    def access(service: str) -> dict[str, Any] | None:
        lines = log_lines(system, service, request_id)
        return next((line for line in lines if line.get("logger") == "syntaskio.access"), None)

    gateway = eventually(lambda: access("gateway"), timeout=10)
    assert gateway, "no access line with the request id in the gateway's log"
    assert (gateway["route"], gateway["status"]) == ("/api/v1/integrations", 200)
    assert gateway["tenant_id"] == tenant
    assert gateway["duration_ms"] >= 0
    auth = eventually(lambda: access("auth"), timeout=10)
    assert auth, "auth-service's lines do not carry the gateway's request id"
    assert (auth["route"], auth["tenant_id"]) == ("/v1/integrations", tenant)
