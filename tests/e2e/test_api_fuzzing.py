"""The dashboard API fuzzed from the OpenAPI document the running gateway serves
(schemathesis): as a signed-in user whose ConnectWise connection has synced tasks (and,
for the admin routes, as admins of the user's company, which has its own connection), no
request makes a server error and every answer is what the document says; and no route
but signing in answers anyone without a valid session."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from e2e_helpers import auth_service, connect, dashboard_tasks, eventually, sandbox, sandbox_keys
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey
from schemathesis import Case, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "gkim"  # fuzzing writes back only to tickets it makes for Grace
ADMIN = ("technician", "admin")
SESSION_COOKIE = "syntaskio_session"
EXAMPLES = 14  # per operation: ~500 requests as the fuzzer's user (300 a minute: see 429s)
PROBLEM_JSON = "application/problem+json"

# Operations are listed from the checked-in document (a unit test keeps it equal to the
# app's), so each gets its own test id; the fixture checks the live one has the same.
_DOCUMENT = json.loads((Path(__file__).parents[2] / "docs" / "openapi.json").read_text())
OPERATIONS = sorted(f"{m.upper()} {path}" for path, ms in _DOCUMENT["paths"].items() for m in ms)
STREAM = "GET /api/v1/tasks/stream"  # endless Server-Sent Events: not fuzzed, 401-checked
CALLBACK = "GET /api/v1/integrations/connectwise/oauth/callback"
# Open to anyone by design: signing in (either way); the probes the cluster calls; and
# logging out, which at least clears the cookie (an expired session must still be able to).
PUBLIC = {
    "GET /api/v1/session/methods",
    "GET /api/v1/session/login",
    "GET /api/v1/session/callback",
    "POST /api/v1/session/dev-login",
    "POST /api/v1/session/logout",
    "GET /healthz",
    "GET /readyz",
}
# Signed in, or sent to the sign-in page rather than answered 401 (a browser lands here).
SIGNED_IN_ONLY = [op for op in OPERATIONS if op not in PUBLIC and op != CALLBACK]

AnyCase = Case[Any]


# The admin console's routes: fuzzed as admins of the fuzzer's company (which has its own
# connection), two of them taking turns (everything is limited per user).
ADMIN_PREFIX = "/api/v1/admin/"
ADMIN_OPERATIONS = [op for op in OPERATIONS if op.split(" ", 1)[1].startswith(ADMIN_PREFIX)]
ADMIN_CONNECT = {
    "POST /api/v1/admin/integrations/connectwise/api-key",
    "POST /api/v1/admin/integrations/connectwise/oauth/start",
}
API_MEMBER = "syntaskio-api"  # whose keys connect a company
# The company settings can turn ConnectWise off (write-back then refused): fuzzed as the
# admin of a company of its own, so the fuzzer's company keeps writing back.
COMPANY_SETTINGS = "PUT /api/v1/admin/settings"
# Connecting is limited per user upstream (auth-service: 10 a minute) and everything per
# user here (300 a minute), and signing out ends a session: these are fuzzed as users of
# their own (admins for the admin routes), the rest as the one with the connection and
# tasks.
OWN_USER = {
    "POST /api/v1/integrations/connectwise/api-key",
    "POST /api/v1/integrations/connectwise/oauth/start",
    CALLBACK,
    # Signing out revokes the session it is sent with.
    "POST /api/v1/session/logout",
    *ADMIN_CONNECT,
    COMPANY_SETTINGS,
}


@dataclass
class Fuzzer:
    """The signed-in user the fuzzer acts as, and ids of things that are really theirs."""

    user_id: str
    tenant_id: str
    token: str
    ids: dict[str, list[str]]
    own_users: dict[str, str]  # operation: another user's token
    admin_tokens: list[str]  # the company's admins'
    admin_ids: dict[str, list[str]]  # real ids for the admin routes
    answers: dict[str, list[int]] = field(default_factory=dict)

    def token_for(self, label: str) -> str:
        if label in self.own_users:
            return self.own_users[label]
        if label in ADMIN_OPERATIONS:
            return self.admin_tokens[ADMIN_OPERATIONS.index(label) % len(self.admin_tokens)]
        return self.token

    def ids_for(self, path: str) -> dict[str, list[str]]:
        return self.admin_ids if path.startswith(ADMIN_PREFIX) else self.ids


@contextmanager
def signed_in_from(
    system: EmbeddedStack,
    user: str,
    tenant: str,
    address: str,
    roles: tuple[str, ...] = ("technician",),
) -> Iterator[httpx.Client]:
    """`signed_in`, from an address of its own (the gateway trusts a loopback proxy's
    X-Forwarded-For): sign-ins are limited to 20 a minute per address, and the other tests
    of the session sign in from 127.0.0.1."""
    with httpx.Client(
        base_url=system.url("gateway"), timeout=30, headers={"X-Forwarded-For": address}
    ) as client:
        response = client.post(
            "/api/v1/session/dev-login",
            json={"user_id": user, "tenant_id": tenant, "roles": list(roles)},
        )
        assert response.status_code == 201, response.text
        yield client


def new_ticket(system: EmbeddedStack, summary: str) -> str:
    """A new service ticket of the member's: its number."""
    made = sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": MEMBER})
    return str(made.json()["id"])


@pytest.fixture(scope="module")
def fuzzer(system: EmbeddedStack) -> Iterator[Fuzzer]:
    user, tenant = f"grace-{uuid.uuid4().hex[:6]}@acme-msp.example", f"fuzz-{uuid.uuid4().hex[:8]}"
    own_users = {}
    for number, label in enumerate(sorted(OWN_USER), start=1):
        roles = ADMIN if label in ADMIN_CONNECT | {COMPANY_SETTINGS} else ("technician",)
        company_of_theirs = f"{tenant}-own" if label == COMPANY_SETTINGS else tenant
        address = f"192.0.2.{number}"
        with signed_in_from(system, f"{number}-{user}", company_of_theirs, address, roles) as other:
            own_users[label] = other.cookies[SESSION_COOKIE]
    admin_tokens = []
    for number in (1, 2):
        admin = f"admin{number}-{user}"
        with signed_in_from(system, admin, tenant, f"192.0.2.{50 + number}", ADMIN) as other:
            admin_tokens.append(other.cookies[SESSION_COOKIE])
    # The company's own connection, for the admin routes' real ids.
    keys = sandbox_keys(system, API_MEMBER)
    with httpx.Client(
        base_url=system.url("gateway"),
        timeout=30,
        headers={"Authorization": f"Bearer {admin_tokens[0]}"},
    ) as admin_client:
        company = admin_client.post(
            "/api/v1/admin/integrations/connectwise/api-key",
            json={
                "site": f"http://{system.sandbox_site}",
                **{k: keys[k] for k in ("company_id", "public_key", "private_key")},
            },
        )
        assert company.status_code == 201, company.text
    # The tickets write-back may change (complete, notes, time): made for the fuzzer, so
    # the member's others stay as the other tests expect them.
    made = {new_ticket(system, f"Fuzzed {thing}") for thing in ("printer", "laptop", "VPN")}
    with signed_in_from(system, user, tenant, "192.0.2.100") as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()

        def targets() -> list[dict[str, Any]]:
            return [t for t in dashboard_tasks(client) if t["external_id"] in made]

        assert eventually(lambda: len(targets()) == len(made), interval=2), "not synced"
        # Phases too (off by default), so a phase task is among the ids fuzzed.
        options = f"/api/v1/integrations/{integration['id']}/sync-options"
        assert client.put(options, json={"project_phases": True}).status_code == 200

        def phases() -> list[dict[str, Any]]:
            return [t for t in dashboard_tasks(client) if t["source_type"] == "project_phase"]

        assert eventually(phases, interval=2), "no phase synced"
        phase = phases()[0]
        noted = client.post(
            f"/api/v1/tasks/{targets()[0]['id']}/notes",
            json={"text": "Fuzzing started"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert noted.status_code == 202, noted.text
        yield Fuzzer(
            user_id=user,
            tenant_id=tenant,
            token=client.cookies[SESSION_COOKIE],
            ids={
                # And a phase: write-back refuses those (409).
                "task_id": [t["id"] for t in targets()] + [phase["id"]],
                "integration_id": [integration["id"]],
                "command_id": [noted.json()["command_id"]],
            },
            own_users=own_users,
            admin_tokens=admin_tokens,
            # Only the company's connection: pausing the user's own would stop what the
            # other routes are fuzzed on.
            admin_ids={"integration_id": [company.json()["id"]], "user_id": [user]},
        )
    # Not synced for the rest of the session (through auth-service: this user's requests
    # to the gateway may be at their limit by now).
    with auth_service(system, user, tenant) as upstream:
        upstream.delete(f"/v1/integrations/{integration['id']}").raise_for_status()
    with auth_service(system, f"admin1-{user}", tenant, roles=ADMIN) as upstream:
        upstream.delete(f"/v1/admin/integrations/{company.json()['id']}").raise_for_status()


@pytest.fixture(scope="module")
def gateway_schema(system: EmbeddedStack, fuzzer: Fuzzer) -> OpenApiSchema:
    schema = schemathesis.openapi.from_url(f"{system.url('gateway')}/openapi.json")
    assert isinstance(schema, OpenApiSchema)
    paths = schema.raw_schema["paths"]
    served = sorted(f"{m.upper()} {path}" for path, ms in paths.items() for m in ms)
    assert served == OPERATIONS, "the gateway serves another API than docs/openapi.json"

    @schema.hook
    def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
        """Random ids only reach "no such ..."; the user's real ones the code behind it
        (not for DELETE: disconnecting the user's integration would end the run)."""
        given_ids = path_parameters or {}
        ids = fuzzer.ids_for(context.operation.path)
        real = [
            st.sampled_from(ids[name]).map(_replacing(given_ids, name))
            for name in given_ids
            if name in ids and context.operation.method.upper() != "DELETE"
        ]
        return st.one_of(st.just(path_parameters), *real)

    @schema.hook
    def flatmap_query(context: Any, query: dict[str, Any] | None) -> Any:
        """A random time zone is refused before the code behind it: half of those asked
        with one ask with a real one."""
        if not query or "tz" not in query:
            return st.just(query)
        return st.one_of(st.just(query), st.just({**query, "tz": "Europe/London"}))

    return schema


def _replacing(parameters: dict[str, Any], name: str) -> Callable[[str], dict[str, Any]]:
    return lambda value: {**parameters, name: value}


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


# What needs the fuzzer's tasks on its dashboard (a plan for the day) goes first, and
# write-backs that may close its tickets go last: closed, they leave its dashboard. In
# between, the company's connection is fuzzed (mappings, pause, resume, sync), which may
# move or hold the user's work, in the time the operations between take.
ON_THE_DASHBOARD = {f"{method} /api/v1/tasks/{{task_id}}/plan" for method in ("PUT", "DELETE")} | {
    "GET /api/v1/my-day",
    "PUT /api/v1/my-day/order",
}
CLOSING = {
    f"POST /api/v1/tasks/{{task_id}}/{action}" for action in ("complete", "log-change", "status")
}
FUZZED = sorted(
    (op for op in OPERATIONS if op != STREAM),
    key=lambda op: (op not in ON_THE_DASHBOARD, op in CLOSING, op),
)


@pytest.mark.parametrize("label", FUZZED)
def test_no_request_makes_a_server_error_and_answers_are_documented(
    label: str, gateway_schema: OpenApiSchema, fuzzer: Fuzzer
) -> None:
    operation = gateway_schema.find_operation_by_label(label)
    assert operation is not None
    answered: list[int] = fuzzer.answers.setdefault(label, [])
    # Both valid and invalid requests (wrong types, missing fields, odd bodies).
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases)
    @settings(
        # Those needing a task on the dashboard reach it only with a real task id, a
        # real time zone and a plan that makes sense at once: more tries.
        max_examples=EXAMPLES * (3 if label in ON_THE_DASHBOARD else 1),
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # a failure is reported as found
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case: AnyCase) -> None:
        headers = {
            "Authorization": f"Bearer {fuzzer.token_for(label)}",
            # Each from an address of its own (see `signed_in_from`): fuzzing dev-login
            # must not use up the sign-ins from 127.0.0.1 the other tests need.
            "X-Forwarded-For": f"198.51.100.{len(answered) % 250 + 1}",
        }
        # A 429 is no failure, but it reaches nothing: wait as told and send it again
        # (the fuzzer's user makes more requests than its 300 a minute).
        response = case.call(headers=headers, timeout=30)
        for _ in range(3):
            if response.status_code != 429:
                break
            time.sleep(min(float(response.headers.get("Retry-After") or 1), 15))
            response = case.call(headers=headers, timeout=30)
        answered.append(response.status_code)
        case.validate_response(response, checks=CHECKS, headers=headers)

    answers_as_documented()
    assert answered, "nothing was sent"
    assert set(answered) != {429}, f"{label}: every request was refused as too many"


def test_fuzzing_reached_past_validation(fuzzer: Fuzzer) -> None:
    """The fuzzer got real answers, not only 404s and 422s: its user's own tasks,
    commands and integration, write-back accepted."""
    if not fuzzer.answers:
        pytest.skip("run with the fuzzing tests")
    reached = {label for label, answers in fuzzer.answers.items() if 200 <= min(answers) < 300}
    expected = {
        "GET /api/v1/tasks",
        "GET /api/v1/tasks/{task_id}",
        "GET /api/v1/tasks/{task_id}/detail",
        "GET /api/v1/commands/{command_id}",
        "GET /api/v1/integrations/{integration_id}",
        "GET /api/v1/integrations/{integration_id}/sync-jobs",
        "GET /api/v1/integrations/tenant",
        "GET /api/v1/admin/users",
        "GET /api/v1/admin/integrations",
        "GET /api/v1/admin/integrations/{integration_id}",
        "GET /api/v1/admin/integrations/{integration_id}/sync-jobs",
        "GET /api/v1/admin/integrations/{integration_id}/mappings",
        "GET /api/v1/admin/audit",
        "GET /api/v1/my-day",
        "PUT /api/v1/my-day/order",
        "PUT /api/v1/tasks/{task_id}/plan",
        "GET /api/v1/tickets/search",
        "GET /api/v1/notifications",
        "POST /api/v1/notifications/read",
    }
    missing = expected - reached
    assert not missing, {label: fuzzer.answers.get(label) for label in sorted(missing)}
    write_back = {label for label in reached if label.startswith("POST /api/v1/tasks/")}
    assert write_back, fuzzer.answers


# -- authentication cannot be skipped -----------------------------------------------------


def _segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_credentials(system: EmbeddedStack, fuzzer: Fuzzer) -> dict[str, dict[str, str]]:
    """Requests' headers that must not pass for a session: none, garbage, and tokens
    forged for the fuzzer's user with every claim right but the signature."""
    keys = httpx.get(f"{system.url('auth')}/.well-known/jwks.json").json()["keys"]
    claims = {
        "iss": system.url("auth"),
        "aud": "syntaskio",
        "sub": fuzzer.user_id,
        "tenant_id": fuzzer.tenant_id,
        "iat": int(time.time()),
        "exp": int(time.time()) + 600,
        "jti": uuid.uuid4().hex,
    }
    header = {"alg": "ES256", "kid": keys[0]["kid"]}
    forged = jwt.encode(header, claims, ECKey.generate_key("P-256"))
    unsigned = f"{_segment({'alg': 'none', 'typ': 'JWT'})}.{_segment(claims)}."
    head, _, signature = fuzzer.token.split(".")
    tampered = f"{head}.{_segment({**claims, 'tenant_id': 'other-msp'})}.{signature}"
    return {
        "none": {},
        "garbage bearer": {"Authorization": "Bearer not-a-session"},
        "garbage cookie": {"Cookie": f"{SESSION_COOKIE}=not-a-session"},
        "other scheme": {"Authorization": f"Basic {fuzzer.token}"},
        "foreign key": {"Authorization": f"Bearer {forged}"},
        "alg none": {"Authorization": f"Bearer {unsigned}"},
        "tampered claims": {"Authorization": f"Bearer {tampered}"},
        "tampered cookie": {"Cookie": f"{SESSION_COOKIE}={tampered}"},
    }


def _valid_requests(schema: OpenApiSchema, label: str, count: int = 3) -> list[AnyCase]:
    """A few requests valid in every way but the credentials (ids are UUIDs, as ours)."""
    operation = schema.find_operation_by_label(label)
    assert operation is not None
    ids = {p.name: str(uuid.uuid4()) for p in operation.path_parameters}
    found: list[AnyCase] = []

    @given(case=operation.as_strategy(GenerationMode.POSITIVE, path_parameters=ids))
    @settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def collect(case: AnyCase) -> None:
        found.append(case)

    collect()
    return found


def _send(case: AnyCase, headers: dict[str, str]) -> requests.Response:
    """Sent without following redirects; a stream is not read (a 401 has no stream, and a
    stream that opened would end the test on the read timeout)."""
    with requests.Session() as session:
        kwargs = case.as_transport_kwargs(headers=headers)
        kwargs.update(allow_redirects=False, timeout=(10, 10), stream=True)
        response = session.request(**kwargs)
        response.close()
        return response


@pytest.fixture(scope="module")
def bad_credentials(system: EmbeddedStack, fuzzer: Fuzzer) -> dict[str, dict[str, str]]:
    return _bad_credentials(system, fuzzer)


@pytest.mark.parametrize("label", SIGNED_IN_ONLY)
def test_every_route_refuses_requests_without_a_valid_session(
    label: str,
    gateway_schema: OpenApiSchema,
    bad_credentials: dict[str, dict[str, str]],
) -> None:
    for case in _valid_requests(gateway_schema, label):
        for name, headers in bad_credentials.items():
            response = _send(case, headers)
            assert response.status_code == 401, f"{label} with {name}: {response.status_code}"
            assert response.headers["content-type"] == PROBLEM_JSON
            assert response.headers["www-authenticate"] == "Bearer"


def test_the_oauth_callback_sends_a_browser_without_a_session_to_sign_in(
    gateway_schema: OpenApiSchema, bad_credentials: dict[str, dict[str, str]]
) -> None:
    for case in _valid_requests(gateway_schema, CALLBACK):
        for name, headers in bad_credentials.items():
            response = _send(case, headers)
            assert response.status_code == 303, f"{name}: {response.status_code}"
            assert response.headers["location"] == "/"


def test_the_document_describes_the_error_answers(gateway_schema: OpenApiSchema) -> None:
    paths = gateway_schema.raw_schema["paths"]
    missing: list[str] = []
    for label in SIGNED_IN_ONLY:
        method, path = label.split(" ", 1)
        answers = paths[path][method.lower()]["responses"]
        missing += [f"{label}: {status}" for status in ("401", "429") if status not in answers]
        missing += [
            f"{label}: {status} as {PROBLEM_JSON}"
            for status, answer in answers.items()
            if status[0] in "45" and set(answer.get("content", {})) != {PROBLEM_JSON}
        ]
    assert not missing, "\n".join(missing)


def test_the_checks_fail_on_a_server_error(gateway_schema: OpenApiSchema) -> None:
    """What the fuzzing above would do with a 500 (so a green run means there was none)."""
    operation = gateway_schema.find_operation_by_label("GET /api/v1/me")
    assert operation is not None
    case = operation.Case()
    request = requests.Request("GET", f"{gateway_schema.get_base_url()}/api/v1/me").prepare()
    crashed = Response(
        status_code=500,
        headers={"content-type": ["application/json"]},
        content=b'{"detail": "boom"}',
        request=request,
        elapsed=0.01,
        message="Internal Server Error",
        encoding="utf-8",
        http_version="1.1",
        verify=True,
    )
    with pytest.raises(FailureGroup, match="Server error"):
        case.validate_response(crashed, checks=CHECKS)


def test_write_back_works_for_every_user_id_sign_in_accepts(system: EmbeddedStack) -> None:
    """Sign-in takes a "+" in a user id (an address's sub-address; an identity provider's
    `sub` holds more: "auth0|…"), so asking for a write-back must work for them too. It
    fails with a 500 today: the command's `Identifier` pattern refuses "+"."""
    user, tenant = f"grace+ops-{uuid.uuid4().hex[:6]}@acme-msp.example", "fuzz-plus"
    made = new_ticket(system, "Noted by a user with a + in their id")
    with signed_in_from(system, user, tenant, "192.0.2.200") as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        try:

            def made_task() -> dict[str, Any] | None:
                tasks = dashboard_tasks(client)
                return next((t for t in tasks if t["external_id"] == made), None)

            ticket = eventually(made_task, interval=2)
            assert ticket, "not synced"
            response = client.post(
                f"/api/v1/tasks/{ticket['id']}/notes",
                json={"text": "Noted by a user with a + in their id"},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert response.status_code == 202, (response.status_code, response.text)
        finally:
            with auth_service(system, user, tenant) as upstream:
                upstream.delete(f"/v1/integrations/{integration['id']}").raise_for_status()
