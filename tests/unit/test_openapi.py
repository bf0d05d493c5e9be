"""The checked-in OpenAPI document is what the gateway's app describes."""

from __future__ import annotations

import json
from pathlib import Path

from syntaskio_gateway.openapi import document

DOCUMENT = Path(__file__).parents[2] / "docs" / "openapi.json"


def test_the_openapi_document_matches_the_code() -> None:
    assert document() == json.loads(DOCUMENT.read_text()), (
        "docs/openapi.json is stale: run `make openapi` and commit it"
    )


def test_the_task_queries_are_documented_with_their_parameters() -> None:
    paths = json.loads(DOCUMENT.read_text())["paths"]
    listing = {p["name"] for p in paths["/api/v1/tasks"]["get"]["parameters"]}
    assert {"status", "board", "company", "project", "due", "q", "sort", "cursor"} <= listing
    assert "/api/v1/tasks/facets" in paths
    assert "/api/v1/tasks/{task_id}" in paths
