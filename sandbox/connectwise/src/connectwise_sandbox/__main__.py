"""`connectwise-sandbox`: run the simulator with uvicorn.

Every option defaults to its `CW_SANDBOX_*` environment variable (see `settings.py`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import uvicorn

from connectwise_sandbox.app import create_app
from connectwise_sandbox.settings import Settings

log = logging.getLogger("connectwise_sandbox")


def parse_settings(argv: Sequence[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(
        prog="connectwise-sandbox", description="A ConnectWise Manage REST API simulator."
    )
    parser.add_argument("--host", help="bind address (CW_SANDBOX_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CW_SANDBOX_PORT, default 8090)")
    parser.add_argument("--tickets", type=int, help="seeded tickets, up to 100000 (default 300)")
    parser.add_argument("--seed", type=int, help="random seed (CW_SANDBOX_SEED, default 42)")
    parser.add_argument("--company-id", help="ConnectWise company id (default syntaskio)")
    parser.add_argument("--codebase", help="codebase path segment (default v2025_1/)")
    parser.add_argument("--client-ids", help="comma-separated accepted clientId GUIDs")
    parser.add_argument(
        "--oauth-redirect-uri",
        action="append",
        dest="oauth_redirect_uris",
        metavar="URI",
        help="a registered OAuth redirect URI, exact match; repeatable "
        "(CW_SANDBOX_OAUTH_REDIRECT_URIS, comma-separated)",
    )
    parser.add_argument("--log-level", help="uvicorn log level (default info)")
    fleet = parser.add_argument_group("fleet mode and latency (see the README)")
    fleet.add_argument("--fleet-companies", type=int, help="fleet companies (default 0: off)")
    fleet.add_argument(
        "--fleet-members-per-company", type=int, help="technicians per fleet company (10)"
    )
    fleet.add_argument(
        "--fleet-tickets-per-member", type=int, help="open tickets per fleet technician (3)"
    )
    fleet.add_argument(
        "--fleet-down-fraction", type=float, help="share of fleet companies that are down (0)"
    )
    fleet.add_argument(
        "--fleet-down-hang-seconds",
        type=float,
        help="how long a down company's request hangs before a 504 (600)",
    )
    fleet.add_argument("--latency-ms", type=float, help="API response latency (0)")
    fleet.add_argument("--latency-tail-ms", type=float, help="latency of the slow tail (0)")
    fleet.add_argument(
        "--latency-tail-fraction", type=float, help="share of requests in the slow tail (0)"
    )
    arguments = vars(parser.parse_args(argv))
    overrides: dict[str, Any] = {k: v for k, v in arguments.items() if v is not None}
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> None:
    settings = parse_settings(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(message)s")
    app = create_app(settings)
    log.info(
        "ConnectWise sandbox: company %s, API at http://%s:%s%s/ with %d tickets; "
        "member API keys at /_sandbox/api-keys",
        settings.company_id,
        settings.host,
        settings.port,
        settings.api_prefix,
        settings.tickets,
    )
    if settings.fleet_companies:
        log.info(
            "Fleet mode: %d companies x %d members; credentials at /_sandbox/fleet/members",
            settings.fleet_companies,
            settings.fleet_members_per_company,
        )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower())


if __name__ == "__main__":
    main()
