"""`syntaskio-auth` (or `python -m syntaskio_auth`): serve, or rotate the vault keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from syntaskio_auth.app import create_app
from syntaskio_auth.rotation import rotate_keys
from syntaskio_auth.settings import AuthSettings
from syntaskio_auth.vault import Vault
from syntaskio_common.logging import configure_logging
from syntaskio_common.mongo import create_mongo_client, get_database
from syntaskio_common.serving import serve


async def _rotate(settings: AuthSettings) -> int:
    vault = Vault(settings.keyring(), settings.vault_primary_key_id)
    client = create_mongo_client(settings)
    try:
        report = await rotate_keys(get_database(client, settings), vault)
    finally:
        await client.close()
    print(json.dumps(report.as_dict(), indent=2))
    return 1 if report.failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="syntaskio-auth", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP service (the default)")
    commands.add_parser(
        "rotate-keys",
        help="re-wrap every stored data key under VAULT_PRIMARY_KEY_ID and report counts",
    )
    args = parser.parse_args(argv)
    settings = AuthSettings()
    if args.command == "rotate-keys":
        configure_logging("auth-service", settings.log_level)
        sys.exit(asyncio.run(_rotate(settings)))
    serve("auth-service", settings, create_app)


if __name__ == "__main__":
    main()
