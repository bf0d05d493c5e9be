"""The checked-in AsyncAPI document is what `faststream docs gen` makes of the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DOCUMENT = Path(__file__).parents[2] / "docs" / "asyncapi.json"


def test_the_asyncapi_document_matches_the_code(tmp_path: Path) -> None:
    generated = tmp_path / "asyncapi.json"
    app = "syntaskio_aggregator.asyncapi:app"
    subprocess.run(
        [sys.executable, "-m", "faststream", "docs", "gen", app, "-o", str(generated)],
        check=True,
        capture_output=True,
    )
    assert json.loads(generated.read_text()) == json.loads(DOCUMENT.read_text()), (
        "docs/asyncapi.json is stale: run `make asyncapi` and commit it"
    )


def test_the_document_describes_the_feed_and_the_raw_events() -> None:
    document = json.loads(DOCUMENT.read_text())
    schemas = document["components"]["schemas"]
    assert {"TaskUpserted", "TaskDeleted"} <= set(schemas)
    assert set(schemas["TaskUpserted"]["required"]) == {"version", "task"}
    raw = schemas["OnRawEvents:Message:Payload"]["oneOf"]
    assert [variant["title"] for variant in raw] == ["RawRecordUpserted", "RawRecordRemoved"]
