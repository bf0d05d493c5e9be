"""The response shapes every ConnectWise endpoint shares: JSON bodies, lists with
conditions/orderBy/fields and paging `Link` headers, counts, and single records — and
`documented_query`, the API routers' check that a request carries only the query
parameters its documented operation declares."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Final

from fastapi import APIRouter, Request, Response

from connectwise_sandbox.errors import not_found
from connectwise_sandbox.pagination import FORWARD_ONLY, paginate
from connectwise_sandbox.query import (
    LIST_PARAMETERS,
    check_parameters,
    lower_keys,
    parse_conditions,
    parse_fields,
    parse_list_query,
    project,
    select,
)
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.schema import EntitySchema
from connectwise_sandbox.state import SandboxState, State
from connectwise_sandbox.store import Schemas

JSON_MEDIA_TYPE: Final = "application/json; charset=utf-8"
SEARCH_SUFFIX: Final = "/search"
# `…/tickets/search` declares no query parameters at all; clients of the real API page a
# search in the query string (the brief of the sandbox: only page and pageSize).
SEARCH_PARAMETERS: Final = frozenset({"page", "pagesize"})
NO_PARAMETERS: Final = frozenset[str]()


def documented_query(request: Request) -> None:
    """A router dependency (after authentication): a GET takes `LIST_PARAMETERS`, a
    search `SEARCH_PARAMETERS`, every other documented operation (POST, PATCH, DELETE)
    none. `clientId` may always come along (see `query.CLIENT_ID_PARAMETER`)."""
    names = [name for name, _ in request.query_params.multi_items()]
    if not names:
        return
    if request.method in ("GET", "HEAD"):
        allowed = LIST_PARAMETERS
    elif request.method == "POST" and request.url.path.endswith(SEARCH_SUFFIX):
        allowed = SEARCH_PARAMETERS
    else:
        allowed = NO_PARAMETERS
    check_parameters(names, allowed, f"{request.method} {request.url.path}")


def forward_only(request: Request) -> bool:
    return request.headers.get("pagination-type", "").strip().lower() == FORWARD_ONLY


def json_response(
    content: Any, headers: dict[str, str] | None = None, status_code: int = 200
) -> Response:
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code, media_type=JSON_MEDIA_TYPE, headers=headers)


def query_params(request: Request) -> dict[str, Any]:
    return lower_keys(request.query_params.multi_items())


def list_response(
    request: Request,
    records: Sequence[JsonObject],
    schema: EntitySchema,
    params: dict[str, Any] | None = None,
) -> Response:
    query = parse_list_query(
        query_params(request) if params is None else params,
        schema,
        forward_only=forward_only(request),
    )
    page = paginate(
        select(records, query),
        query,
        str(request.url.replace(query="")),
        request.query_params.multi_items(),
    )
    rows = [project(record, query.fields) for record in page.rows]
    return json_response(rows, headers={"Link": page.link} if page.link else None)


def count_response(
    request: Request, records: Sequence[JsonObject], schema: EntitySchema
) -> Response:
    predicate = parse_conditions(query_params(request).get("conditions"), schema)
    return json_response({"count": sum(1 for record in records if predicate(record))})


def record_response(
    request: Request, record: JsonObject, schema: EntitySchema, status_code: int = 200
) -> Response:
    fields = parse_fields(query_params(request).get("fields"), schema)
    return json_response(project(record, fields), status_code=status_code)


def find_record(records: Sequence[JsonObject], record_id: int, entity: str) -> JsonObject:
    for record in records:
        if record["id"] == record_id:
            return record
    raise not_found(entity, record_id)


def collection_routes(
    router: APIRouter,
    path: str,
    entity: str,
    records: Callable[[SandboxState], Sequence[JsonObject]],
    schema: Callable[[Schemas], EntitySchema],
) -> None:
    """List, count and get-by-id for a read-only collection."""

    @router.get(path, name=f"list_{entity.lower()}")
    def list_records(request: Request, state: State) -> Response:
        return list_response(request, records(state), schema(state.store.schemas))

    @router.get(f"{path}/count", name=f"count_{entity.lower()}")
    def count_records(request: Request, state: State) -> Response:
        return count_response(request, records(state), schema(state.store.schemas))

    @router.get(f"{path}/{{record_id}}", name=f"get_{entity.lower()}")
    def get_record(record_id: int, request: Request, state: State) -> Response:
        record = find_record(records(state), record_id, entity)
        return record_response(request, record, schema(state.store.schemas))
