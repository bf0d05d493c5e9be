"""Liveness and readiness endpoints, the same in every service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from fastapi import APIRouter
from fastapi.responses import JSONResponse

ReadinessCheck = Callable[[], Awaitable[bool]]
LIVENESS_PATH: Final = "/healthz"
READINESS_PATH: Final = "/readyz"
# Asked by the kubelet, at its own pace: never traced, rate-limited or refused as busy.
PROBE_PATHS: Final = frozenset({LIVENESS_PATH, READINESS_PATH})


def health_router(checks: Mapping[str, ReadinessCheck]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get(LIVENESS_PATH, summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(READINESS_PATH, summary="Readiness: dependencies reachable")
    async def readyz() -> JSONResponse:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "checks": results},
            status_code=200 if ready else 503,
        )

    return router
