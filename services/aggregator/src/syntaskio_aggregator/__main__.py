"""`syntaskio-aggregator` (or `python -m syntaskio_aggregator`): serve, or move
dead-lettered raw events back once the cause is fixed."""

from __future__ import annotations

import argparse
import asyncio
import json

from syntaskio_aggregator.app import create_app
from syntaskio_aggregator.dlq_replay import replay_dead_letters
from syntaskio_aggregator.settings import AggregatorSettings
from syntaskio_common.logging import configure_logging
from syntaskio_common.serving import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="syntaskio-aggregator", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="consume raw events and serve health (the default)")
    replay = commands.add_parser(
        "replay-dlq",
        help="republish syntaskio.connectwise.raw.v1.dlq to its topic and report counts",
    )
    replay.add_argument("--limit", type=int, help="move at most this many records")
    replay.add_argument("--dry-run", action="store_true", help="count by reason, move nothing")
    args = parser.parse_args(argv)
    settings = AggregatorSettings()
    if args.command == "replay-dlq":
        configure_logging("aggregator", settings.log_level)
        report = asyncio.run(replay_dead_letters(settings, limit=args.limit, dry_run=args.dry_run))
        print(json.dumps(report.as_dict(), indent=2))
        return
    serve("aggregator", settings, create_app)


if __name__ == "__main__":
    main()
