"""`syntaskio-dev run`: the whole system on one machine (what `make run` calls)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

import httpx

from syntaskio_devstack.processes import StackError
from syntaskio_devstack.stack import SERVICES, EmbeddedStack, StackConfig

DEMO_USER = {"user_id": "alex@acme-msp.example", "tenant_id": "acme-msp", "name": "Alex Tech"}
DEMO_MEMBER = "atech"
SANDBOX_COMPANY = "syntaskio"  # the sandbox's default company id


def connect_demo_user(stack: EmbeddedStack) -> None:
    """Sign the demo user in and connect them to the sandbox as member `atech`, exactly as
    a user would through the API, so the dashboard shows tickets on first load."""
    keys = httpx.get(f"{stack.url('sandbox')}/_sandbox/api-keys", timeout=10).json()
    member = next(k for k in keys if k["member_identifier"] == DEMO_MEMBER)
    with httpx.Client(base_url=stack.url("gateway"), timeout=30) as gateway:
        gateway.post("/api/v1/session/dev-login", json=DEMO_USER).raise_for_status()
        gateway.post(
            "/api/v1/integrations/connectwise/api-key",
            json={
                "site": f"http://{stack.sandbox_site}",
                "company_id": member["company_id"],
                "public_key": member["public_key"],
                "private_key": member["private_key"],
            },
        ).raise_for_status()


def run(args: argparse.Namespace) -> int:
    stack = EmbeddedStack(
        StackConfig(
            data_dir=Path(args.data_dir).resolve(),
            sandbox_tickets=args.tickets,
            sync_interval_seconds=args.sync_interval,
        )
    )
    # Ctrl-C and SIGTERM both stop the stack in order (an inherited "ignore SIGINT" from a
    # background shell is overridden on purpose).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = time.monotonic()
    try:
        print("Starting broker and database…", flush=True)
        stack.start_data_stores()
        print("Starting the ConnectWise sandbox…", flush=True)
        stack.start_sandbox()
        print("Starting auth-service, aggregator, connector and gateway…", flush=True)
        stack.start_services()
        connect_demo_user(stack)
        print(
            f"\nSyntaskio is up in {time.monotonic() - started:.0f}s.\n"
            f"  Dashboard:   {stack.url('gateway')}/\n"
            f"  Dev login:   user {DEMO_USER['user_id']}, tenant {DEMO_USER['tenant_id']} "
            f"(prefilled; connected to the sandbox as member '{DEMO_MEMBER}')\n"
            f"  Try OAuth:   sign in as someone else, open Settings and connect with site "
            f"{stack.url('sandbox')} and company '{SANDBOX_COMPANY}'\n"
            f"  API docs:    {stack.url('gateway')}/docs\n"
            f"  Sandbox:     {stack.url('sandbox')}/docs\n"
            f"  Metrics:     {' '.join(stack.metrics_url(name) for name in SERVICES)}\n"
            f"  Logs:        {stack.config.data_dir / 'logs'}/\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
        while all(p.running for p in stack.processes.values()):
            time.sleep(1)
        stopped = [name for name, p in stack.processes.items() if not p.running]
        print(f"{', '.join(stopped)} stopped unexpectedly; see the logs.", file=sys.stderr)
        return 1
    except StackError as error:
        print(f"Could not start: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        # A terminal's Ctrl-C reaches us more than once (uv forwards it too): finish
        # stopping the children rather than abandon them half-way.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nStopping…", flush=True)
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="syntaskio-dev")
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="start the whole system on the embedded stack")
    run_parser.add_argument("--data-dir", default=".data")
    run_parser.add_argument("--tickets", type=int, default=300)
    run_parser.add_argument("--sync-interval", type=float, default=30.0)
    args = parser.parse_args()
    sys.exit(run(args))


if __name__ == "__main__":
    main()
