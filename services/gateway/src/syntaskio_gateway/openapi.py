"""The gateway's OpenAPI document, generated from its FastAPI app (so it cannot drift):

    python -m syntaskio_gateway.openapi docs/openapi.json

`make openapi` runs exactly that; a test fails when the checked-in file differs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from syntaskio_gateway.app import create_app
from syntaskio_gateway.settings import GatewaySettings


def document() -> dict[str, Any]:
    # Fixed settings, not the environment's: the document describes the API. The app is
    # only built, never started (no connection is made).
    settings = GatewaySettings(environment="development", auth_service_url="http://auth:8081")
    return create_app(settings).openapi()


def main() -> None:
    text = json.dumps(document(), indent=2, sort_keys=True) + "\n"
    Path(sys.argv[1]).write_text(text)


if __name__ == "__main__":
    main()
