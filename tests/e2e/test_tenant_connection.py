"""The company's own ConnectWise connection, against auth-service as it runs: an admin
connects the tenant with the integration (API) member's keys, technicians are proposed
by e-mail (the sandbox's members have `first.last@msp.example` office e-mails), the admin
confirms or changes a mapping, a technician asks for theirs; the lease carries the
confirmed members; pause, resume, disconnect; the audit log. Technicians are refused
admin routes (403); another company's admin finds nothing (404, as for no such id)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from e2e_helpers import (
    answer_consent,
    auth_service,
    callback_params,
    eventually,
    lease,
    sandbox_keys,
    topic_events,
)

from syntaskio_common import events, topics
from syntaskio_devstack.stack import EmbeddedStack, dev_secrets

PROBLEM_JSON = "application/problem+json"
API_MEMBER = "syntaskio-api"
CONNECT = "/v1/admin/integrations/connectwise/api-key"


def new_tenant() -> str:
    return f"company-{uuid.uuid4().hex[:10]}"


def person(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}@acme-msp.example"


def api_member_keys(system: EmbeddedStack, **extra: Any) -> dict[str, Any]:
    keys = sandbox_keys(system, API_MEMBER)
    return {
        "site": f"http://{system.sandbox_site}",
        "company_id": keys["company_id"],
        "public_key": keys["public_key"],
        "private_key": keys["private_key"],
        **extra,
    }


def refused(response: httpx.Response, status: int, words: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON, response.text
    assert words in response.json()["detail"], response.text


def lifecycle(system: EmbeddedStack, integration_id: str) -> list[str]:
    """The event types auth-service published about the integration, in order."""
    return [
        event.type
        for event in topic_events(system, topics.INTEGRATIONS)
        if event.subject == f"integration/{integration_id}"
        and event.source == "/syntaskio/auth-service"
    ]


def team(system: EmbeddedStack, integration_id: str) -> dict[str, str]:
    """The lease's members: ConnectWise identifier → user id."""
    leased = lease(system, integration_id)
    assert leased.status_code == 200, leased.text
    assert leased.json()["scope"] == "tenant"
    return {m["identifier"]: m["user_id"] for m in leased.json()["members"]}


@dataclass
class Company:
    tenant_id: str
    admin: httpx.Client
    admin_id: str
    integration: dict[str, Any]
    # Technicians by first name, each signed in (so a tenant user) with a client.
    people: dict[str, tuple[str, httpx.Client]]

    def id_of(self, name: str) -> str:
        return self.people[name][0]

    def client_of(self, name: str) -> httpx.Client:
        return self.people[name][1]

    @property
    def mappings(self) -> str:
        return f"/v1/admin/integrations/{self.integration['id']}/mappings"

    def by_user(self) -> dict[str, dict[str, Any]]:
        listed = self.admin.get(self.mappings)
        assert listed.status_code == 200, listed.text
        return {m["user_id"]: m for m in listed.json()}


# Who signs in before the company connects: e-mail as the identity provider verified it.
PEOPLE = {
    "alex": "alex.tech@msp.example",  # atech
    "beth": "Beth.Jones@MSP.example",  # bjones: case does not matter
    "luis": "luis.martin@msp.example",  # lmartin is inactive: never proposed
    "nina": "nina.nobody@msp.example",  # no member has it
    "carlos": None,  # no verified e-mail: asks by identifier
    "grace": "grace.kim@msp.example",  # gkim: asks by e-mail herself
}


@pytest.fixture(scope="module")
def company(system: EmbeddedStack) -> Iterator[Company]:
    tenant, admin_id = new_tenant(), person("admin")
    with ExitStack() as stack:
        people = {}
        for name, email in PEOPLE.items():
            user_id = person(name)
            client = stack.enter_context(auth_service(system, user_id, tenant, email=email))
            people[name] = (user_id, client)
        admin = stack.enter_context(auth_service(system, admin_id, tenant, roles=("admin",)))
        connected = admin.post(CONNECT, json=api_member_keys(system))
        assert connected.status_code == 201, connected.text
        yield Company(tenant, admin, admin_id, connected.json(), people)


@pytest.fixture(scope="module")
def outsider(system: EmbeddedStack) -> Iterator[httpx.Client]:
    """Another company's admin."""
    with auth_service(system, person("mallory"), new_tenant(), roles=("admin",)) as client:
        yield client


def test_an_admin_connects_the_company_once(system: EmbeddedStack, company: Company) -> None:
    integration = company.integration
    assert integration["scope"] == "tenant"
    assert integration["user_id"] == ""
    assert integration["connected_by"] == company.admin_id
    assert integration["member_identifier"] == API_MEMBER
    assert (integration["auth_method"], integration["status"]) == ("api_key", "active")

    # Reconnecting replaces the keys of the one connection.
    again = company.admin.post(CONNECT, json=api_member_keys(system))
    assert again.status_code == 201, again.text
    assert again.json()["id"] == integration["id"]
    assert again.json()["generation"] == integration["generation"] + 1

    listed = company.admin.get("/v1/admin/integrations").json()
    assert [i["id"] for i in listed] == [integration["id"]]
    shown = company.admin.get(f"/v1/admin/integrations/{integration['id']}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["scope"] == "tenant"
    # Nobody's own connection: the personal lists do not show it.
    assert company.admin.get("/v1/integrations").json() == []
    assert company.client_of("alex").get("/v1/integrations").json() == []
    # The connector finds it among the active ones.
    internal = connector_list(system)
    assert integration["id"] in internal
    assert events.INTEGRATION_CONNECTED in lifecycle(system, integration["id"])


def connector_list(system: EmbeddedStack) -> set[str]:
    """The ids auth-service lists as active (`GET /internal/v1/integrations?status=active`)."""
    token = dev_secrets(system.config.data_dir)["INTERNAL_API_TOKEN"]
    response = httpx.get(
        f"{system.url('auth')}/internal/v1/integrations",
        params={"status": "active"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    return {i["id"] for i in response.json()}


def test_a_company_connection_cannot_impersonate(system: EmbeddedStack, company: Company) -> None:
    response = company.admin.post(
        CONNECT, json=api_member_keys(system, member="atech", impersonate=True)
    )
    refused(response, 422, "cannot impersonate")
    shown = company.admin.get(f"/v1/admin/integrations/{company.integration['id']}").json()
    assert shown["auth_method"] == "api_key"


def test_technicians_are_refused_every_admin_route(system: EmbeddedStack, company: Company) -> None:
    technician = company.client_of("alex")
    for method, path, body in admin_routes(company.integration["id"], company.id_of("beth")):
        if path == CONNECT:
            body = api_member_keys(system)
        response = technician.request(method, path, json=body)
        refused(response, 403, "admin role")


def admin_routes(integration_id: str, user_id: str) -> list[tuple[str, str, Any]]:
    """Every admin route, with a connection's and a user's id in it: (method, path, body)."""
    one = f"/v1/admin/integrations/{integration_id}"
    mapping = f"{one}/mappings/{quote(user_id, safe='@')}"
    return [
        ("GET", "/v1/admin/users", None),
        ("GET", "/v1/admin/audit", None),
        ("POST", CONNECT, None),
        (
            "POST",
            "/v1/admin/integrations/connectwise/oauth/start",
            {"site": "x", "company_id": "y"},
        ),
        ("GET", one, None),
        ("POST", f"{one}/pause", None),
        ("POST", f"{one}/resume", None),
        ("GET", f"{one}/mappings", None),
        ("POST", f"{one}/mappings/propose", None),
        ("PUT", mapping, {"member_identifier": "atech"}),
        ("DELETE", mapping, None),
        ("DELETE", one, None),
    ]


def test_the_admin_sees_who_has_signed_in(company: Company) -> None:
    users = {u["user_id"]: u for u in company.admin.get("/v1/admin/users").json()}
    assert set(users) == {company.admin_id} | {company.id_of(n) for n in PEOPLE}
    alex = users[company.id_of("alex")]
    assert (alex["email"], alex["roles"]) == ("alex.tech@msp.example", ["technician"])
    assert users[company.id_of("carlos")]["email"] is None
    assert users[company.admin_id]["roles"] == ["admin"]


def test_technicians_are_proposed_by_email_and_not_synced_yet(
    system: EmbeddedStack, company: Company
) -> None:
    mappings = company.by_user()
    proposed = {
        user_id: m["member_identifier"]
        for user_id, m in mappings.items()
        if m["state"] == "proposed"
    }
    assert proposed == {
        company.id_of("alex"): "atech",
        company.id_of("beth"): "bjones",
        company.id_of("grace"): "gkim",
    }
    alex = mappings[company.id_of("alex")]
    assert (alex["origin"], alex["updated_by"], alex["member_name"]) == (
        "email",
        "system",
        "Alex Tech",
    )
    # Proposals are never synced: the lease has no members until an admin confirms.
    assert team(system, company.integration["id"]) == {}
    # Proposing again changes nothing.
    again = company.admin.post(f"{company.mappings}/propose")
    assert again.status_code == 200, again.text
    assert {m["user_id"]: m for m in again.json()} == mappings


def test_the_admin_confirms_and_changes_mappings(system: EmbeddedStack, company: Company) -> None:
    integration_id = company.integration["id"]
    alex = company.admin.put(
        f"{company.mappings}/{company.id_of('alex')}", json={"member_identifier": "atech"}
    )
    assert alex.status_code == 200, alex.text
    assert (alex.json()["state"], alex.json()["origin"], alex.json()["updated_by"]) == (
        "confirmed",
        "email",
        company.admin_id,
    )
    assert team(system, integration_id) == {"atech": company.id_of("alex")}

    # A member that does not exist, an inactive one, one that is someone else's.
    nina = f"{company.mappings}/{company.id_of('nina')}"
    refused(
        company.admin.put(nina, json={"member_identifier": "zzghost"}),
        422,
        "ConnectWise has no member 'zzghost'.",
    )
    refused(company.admin.put(nina, json={"member_identifier": "lmartin"}), 422, "inactive")
    refused(
        company.admin.put(
            f"{company.mappings}/{company.id_of('beth')}", json={"member_identifier": "ATECH"}
        ),
        409,
        "already mapped",
    )
    # Not a member identifier at all; a user who never signed in here.
    bad = company.admin.put(nina, json={"member_identifier": 'x" or identifier != "'})
    assert bad.status_code == 422, bad.text
    assert bad.headers["content-type"] == PROBLEM_JSON
    refused(
        company.admin.put(
            f"{company.mappings}/{person('stranger')}", json={"member_identifier": "dpatel"}
        ),
        404,
    )
    mappings = company.by_user()
    assert company.id_of("nina") not in mappings
    assert mappings[company.id_of("beth")]["state"] == "proposed"

    # Beth is Divya's member really: changed by the admin, confirmed at once.
    beth = company.admin.put(
        f"{company.mappings}/{company.id_of('beth')}", json={"member_identifier": "DPatel"}
    )
    assert beth.status_code == 200, beth.text
    assert (beth.json()["member_identifier"], beth.json()["origin"]) == ("dpatel", "admin")
    assert team(system, integration_id) == {
        "atech": company.id_of("alex"),
        "dpatel": company.id_of("beth"),
    }
    changed = lifecycle(system, integration_id).count(events.INTEGRATION_MEMBERS_CHANGED)
    assert changed == 2


def test_a_technician_sees_and_requests_their_mapping(
    system: EmbeddedStack, company: Company
) -> None:
    carlos = company.client_of("carlos")
    view = carlos.get("/v1/integrations/tenant")
    assert view.status_code == 200, view.text
    assert view.json()["integration_id"] == company.integration["id"]
    assert (view.json()["status"], view.json()["mapping"]) == ("active", None)

    request = "/v1/integrations/tenant/mapping-request"
    refused(carlos.post(request, json={}), 422, "no verified e-mail")
    refused(carlos.post(request, json={"member_identifier": "zzghost"}), 422, "no member")
    refused(carlos.post(request, json={"member_identifier": "atech"}), 409, "already mapped")
    asked = carlos.post(request, json={"member_identifier": "cmiller"})
    assert asked.status_code == 200, asked.text
    assert (asked.json()["state"], asked.json()["origin"]) == ("requested", "technician")
    assert carlos.get("/v1/integrations/tenant").json()["mapping"]["member_identifier"] == (
        "cmiller"
    )

    # By her verified e-mail: her proposal becomes her request.
    grace = company.client_of("grace").post(request, json={})
    assert grace.status_code == 200, grace.text
    assert (grace.json()["member_identifier"], grace.json()["state"]) == ("gkim", "requested")
    refused(company.client_of("nina").post(request, json={}), 422, "nina.nobody@msp.example")
    # A confirmed mapping is the admin's to change.
    refused(company.client_of("alex").post(request, json={"member_identifier": "cmiller"}), 409)
    # Requests are not synced.
    assert set(team(system, company.integration["id"])) == {"atech", "dpatel"}

    # Proposing does not overwrite a request or a confirmed mapping.
    company.admin.post(f"{company.mappings}/propose")
    mappings = company.by_user()
    assert mappings[company.id_of("grace")]["state"] == "requested"
    assert mappings[company.id_of("beth")]["member_identifier"] == "dpatel"

    confirmed = company.admin.put(
        f"{company.mappings}/{company.id_of('carlos')}", json={"member_identifier": "cmiller"}
    )
    assert (confirmed.json()["state"], confirmed.json()["origin"]) == ("confirmed", "technician")
    assert team(system, company.integration["id"])["cmiller"] == company.id_of("carlos")


def test_removing_a_mapping(system: EmbeddedStack, company: Company) -> None:
    grace = f"{company.mappings}/{company.id_of('grace')}"
    assert company.admin.delete(grace).status_code == 204
    refused(company.admin.delete(grace), 404)
    before = lifecycle(system, company.integration["id"]).count(events.INTEGRATION_MEMBERS_CHANGED)
    carlos = f"{company.mappings}/{company.id_of('carlos')}"
    assert company.admin.delete(carlos).status_code == 204
    assert "cmiller" not in team(system, company.integration["id"])
    after = lifecycle(system, company.integration["id"]).count(events.INTEGRATION_MEMBERS_CHANGED)
    assert after == before + 1


def test_pausing_stops_the_leases_until_resumed(system: EmbeddedStack, company: Company) -> None:
    one = f"/v1/admin/integrations/{company.integration['id']}"
    paused = company.admin.post(f"{one}/pause")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    refused(lease(system, company.integration["id"]), 404)
    refused(company.admin.post(f"{one}/pause"), 409, "paused")
    # Reconnecting is no way around a pause.
    assert company.admin.post(CONNECT, json=api_member_keys(system)).json()["status"] == "paused"
    assert company.client_of("alex").get("/v1/integrations/tenant").json()["status"] == "paused"
    assert company.integration["id"] not in connector_list(system)

    resumed = company.admin.post(f"{one}/resume")
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "active"
    assert "atech" in team(system, company.integration["id"])
    refused(company.admin.post(f"{one}/resume"), 409, "active")
    published = lifecycle(system, company.integration["id"])
    assert published.index(events.INTEGRATION_PAUSED) < published.index(events.INTEGRATION_RESUMED)


def test_another_companys_admin_finds_nothing(
    system: EmbeddedStack, company: Company, outsider: httpx.Client
) -> None:
    """Each route answers exactly as for an id that does not exist, and changes nothing."""
    before = company.by_user()
    for method, path, body in admin_routes(company.integration["id"], company.id_of("alex")):
        if company.integration["id"] not in path:
            continue
        tried = outsider.request(method, path, json=body)
        missing = outsider.request(
            method, path.replace(company.integration["id"], str(uuid.uuid4())), json=body
        )
        assert tried.status_code == 404, f"{method} {path}: {tried.text}"
        assert tried.headers["content-type"] == PROBLEM_JSON
        assert tried.json() == missing.json(), f"{method} {path}"
    assert outsider.get("/v1/admin/integrations").json() == []
    assert company.tenant_id not in {u["tenant_id"] for u in outsider.get("/v1/admin/users").json()}
    assert not [
        r
        for r in outsider.get("/v1/admin/audit", params={"limit": 500}).json()
        if r["integration_id"] == company.integration["id"]
    ]
    assert company.by_user() == before
    shown = company.admin.get(f"/v1/admin/integrations/{company.integration['id']}").json()
    assert shown["status"] == "active"


def test_the_admin_manages_a_technicians_own_connection(
    system: EmbeddedStack, company: Company
) -> None:
    """Personal connections keep working beside the company's, and are the admin's to
    see, pause and disconnect too (but have no member mapping)."""
    own = company.client_of("luis").post(
        "/v1/integrations/connectwise/api-key",
        json={**api_member_keys(system), "member": "hnguyen"},
    )
    assert own.status_code == 201, own.text
    personal = own.json()
    assert (personal["scope"], personal["user_id"]) == ("personal", company.id_of("luis"))
    one = f"/v1/admin/integrations/{personal['id']}"
    assert company.admin.get(one).json()["id"] == personal["id"]
    listed = {i["id"] for i in company.admin.get("/v1/admin/integrations").json()}
    assert listed == {company.integration["id"], personal["id"]}
    refused(company.admin.get(f"{one}/mappings"), 404)
    refused(company.admin.post(f"{one}/mappings/propose"), 404)

    assert company.admin.post(f"{one}/pause").json()["status"] == "paused"
    refused(lease(system, personal["id"]), 404)
    # The technician reconnecting does not lift the admin's pause.
    again = company.client_of("luis").post(
        "/v1/integrations/connectwise/api-key",
        json={**api_member_keys(system), "member": "hnguyen"},
    )
    assert again.json()["status"] == "paused"

    gone = company.admin.delete(one)
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "disconnected"
    refused(lease(system, personal["id"]), 404)
    [record] = company.admin.get(
        "/v1/admin/audit", params={"integration_id": personal["id"], "action": "disconnected"}
    ).json()
    assert record["user_id"] == company.admin_id


def test_the_audit_log_says_who_did_what(company: Company) -> None:
    integration_id = company.integration["id"]

    def audit(**params: Any) -> list[dict[str, Any]]:
        response = company.admin.get("/v1/admin/audit", params=params)
        assert response.status_code == 200, response.text
        records: list[dict[str, Any]] = response.json()
        assert all(r["tenant_id"] == company.tenant_id for r in records)
        return records

    everything = audit(integration_id=integration_id, limit=500)
    at = [datetime.fromisoformat(r["at"]) for r in everything]
    assert at == sorted(at, reverse=True), "newest first"
    by_action = {r["action"] for r in everything}
    assert {
        "connected",
        "mapping.proposed",
        "mapping.confirmed",
        "mapping.requested",
        "mapping.removed",
        "paused",
        "resumed",
        "credentials.leased",
    } <= by_action
    for action in ("connected", "mapping.confirmed", "mapping.removed", "paused", "resumed"):
        records = audit(integration_id=integration_id, action=action)
        assert records, action
        assert {r["user_id"] for r in records} == {company.admin_id}, action
    assert len(audit(integration_id=integration_id, limit=1)) == 1
    # Leases stay as they were: the (self-declared) caller, no user.
    leased = audit(integration_id=integration_id, action="credentials.leased", limit=500)
    assert {r["user_id"] for r in leased} == {None}
    assert "e2e-test" in {r["detail"]["caller"] for r in leased}
    [requested] = audit(user_id=company.id_of("carlos"), action="mapping.requested")
    assert requested["detail"]["member_identifier"] == "cmiller"
    assert requested["detail"]["mapped_user_id"] == company.id_of("carlos")
    assert audit(since=(datetime.now(UTC) + timedelta(minutes=5)).isoformat()) == []
    assert len(audit(since=everything[-1]["at"], integration_id=integration_id, limit=500)) >= len(
        everything
    )
    for bad in ({"limit": 0}, {"limit": 501}, {"since": "yesterday"}):
        response = company.admin.get("/v1/admin/audit", params=bad)
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == PROBLEM_JSON


def test_disconnecting_the_company(system: EmbeddedStack, company: Company) -> None:
    one = f"/v1/admin/integrations/{company.integration['id']}"
    gone = company.admin.delete(one)
    assert gone.status_code == 200, gone.text
    assert gone.json()["status"] == "disconnected"
    refused(lease(system, company.integration["id"]), 404)
    refused(company.admin.post(f"{one}/pause"), 409)
    # No credentials to ask ConnectWise with: mapping waits for a reconnect.
    refused(
        company.admin.put(
            f"{company.mappings}/{company.id_of('nina')}", json={"member_identifier": "ewong"}
        ),
        409,
        "reconnect",
    )
    [record] = company.admin.get(
        "/v1/admin/audit",
        params={"integration_id": company.integration["id"], "action": "disconnected"},
    ).json()
    assert record["user_id"] == company.admin_id
    assert events.INTEGRATION_DISCONNECTED in lifecycle(system, company.integration["id"])


def test_a_company_without_a_connection(system: EmbeddedStack) -> None:
    tenant = new_tenant()
    with auth_service(system, person("tom"), tenant, email="alex.tech@msp.example") as tom:
        refused(tom.get("/v1/integrations/tenant"), 404, "not connected")
        refused(tom.post("/v1/integrations/tenant/mapping-request", json={}), 404)
    refused_email = httpx.post(
        f"{system.url('auth')}/v1/dev/sessions",
        json={"user_id": person("x"), "tenant_id": tenant, "email": "not an address"},
    )
    assert refused_email.status_code == 422


def test_an_admin_connects_the_company_with_oauth(system: EmbeddedStack) -> None:
    tenant = new_tenant()
    site = {"site": f"http://{system.sandbox_site}", "company_id": "syntaskio"}
    with (
        auth_service(system, person("admin"), tenant, roles=("admin",)) as admin,
        auth_service(system, person("kelly"), tenant, email="kelly.brown@msp.example") as kelly,
    ):
        start = "/v1/admin/integrations/connectwise/oauth/start"
        refused(kelly.post(start, json=site), 403)
        started = admin.post(start, json=site)
        assert started.status_code == 200, started.text
        params = callback_params(answer_consent(started.json()["authorization_url"], "approve"))
        # Only the admin's session finishes the admin's flow.
        other = kelly.get("/v1/integrations/connectwise/oauth/callback", params=params)
        assert other.headers["location"].endswith("connectwise=expired_state")
        assert kelly.get("/v1/integrations").json() == []

        params = callback_params(
            answer_consent(admin.post(start, json=site).json()["authorization_url"], "approve")
        )
        landed = admin.get("/v1/integrations/connectwise/oauth/callback", params=params)
        assert landed.status_code == 303, landed.text
        # Back to the admin console (a personal connection goes back to the settings).
        assert landed.headers["location"] == "/admin?connectwise=connected"
        [integration] = admin.get("/v1/admin/integrations").json()
        assert (integration["scope"], integration["auth_method"]) == ("tenant", "oauth2")
        assert integration["user_id"] == ""
        assert admin.get("/v1/integrations").json() == []
        # Kelly was proposed by e-mail as soon as the company connected.
        mappings = admin.get(f"/v1/admin/integrations/{integration['id']}/mappings").json()
        assert [(m["member_identifier"], m["state"]) for m in mappings] == [("kbrown", "proposed")]
        assert team(system, integration["id"]) == {}
        assert admin.delete(f"/v1/admin/integrations/{integration['id']}").status_code == 200


def test_signing_in_through_the_provider_makes_a_tenant_user(system: EmbeddedStack) -> None:
    """The e-mail the identity provider verified is the one kept for mapping."""
    sub = f"user-{uuid.uuid4().hex[:8]}@acme.example"
    provider = system.url("identity_provider")
    made = httpx.put(
        f"{provider}/users/{quote(sub, safe='')}",
        json={"email": sub, "org": "acme", "groups": ["syntaskio-technicians"], "name": "Ola"},
    )
    assert made.status_code == 204, made.text
    with httpx.Client(base_url=system.url("auth"), timeout=30) as auth:
        started = auth.post("/v1/sessions/oidc/start", json={"return_to": "/"})
        assert started.status_code == 200, started.text
        answer = httpx.post(started.json()["authorization_url"], data={"sub": sub})
        assert answer.status_code in (302, 303), answer.text
        query = callback_params(answer.headers["location"])
        finished = auth.post(
            "/v1/sessions/oidc/finish",
            json={
                "state": query["state"],
                "code": query["code"],
                "binding": started.json()["binding"],
            },
        )
        assert finished.status_code == 200, finished.text
    with auth_service(system, person("admin"), "acme-msp", roles=("admin",)) as admin:

        def listed() -> dict[str, Any] | None:
            users = admin.get("/v1/admin/users").json()
            return next((u for u in users if u["user_id"] == sub), None)

        user = eventually(listed, timeout=10)
        assert user, "the signed-in user is not listed"
        assert (user["email"], user["name"], user["roles"]) == (sub, "Ola", ["technician"])


def test_company_settings_are_read_by_everyone_and_changed_by_admins(
    system: EmbeddedStack, outsider: httpx.Client
) -> None:
    tenant, admin_id = new_tenant(), person("admin")
    with (
        auth_service(system, person("alex"), tenant) as alex,
        auth_service(system, admin_id, tenant, roles=("admin",)) as admin,
    ):
        connected = admin.post(CONNECT, json=api_member_keys(system))
        assert connected.status_code == 201, connected.text
        check_company_settings(system, alex, admin, admin_id, connected.json()["id"], outsider)


def check_company_settings(
    system: EmbeddedStack,
    alex: httpx.Client,
    admin: httpx.Client,
    admin_id: str,
    integration_id: str,
    outsider: httpx.Client,
) -> None:
    defaults = alex.get("/v1/settings")
    assert defaults.status_code == 200, defaults.text
    assert defaults.json() == {
        "connectwise_enabled": True,
        "default_time_minutes": 15,
        "sla_warning_minutes": 60,
        "log_change_status": None,
    }
    wanted = {
        "connectwise_enabled": True,
        "default_time_minutes": 30,
        "sla_warning_minutes": 120,
        "log_change_status": "Waiting",
    }
    refused(alex.put("/v1/admin/settings", json=wanted), 403)
    for bad in (
        {**wanted, "default_time_minutes": 0},
        {**wanted, "default_time_minutes": 481},
        {**wanted, "sla_warning_minutes": 4},
        {**wanted, "sla_warning_minutes": 1441},
        {**wanted, "log_change_status": "  "},
        {**wanted, "surprise": True},
    ):
        refused(admin.put("/v1/admin/settings", json=bad), 422)
    assert alex.get("/v1/settings").json() == defaults.json()  # nothing changed
    changed = admin.put("/v1/admin/settings", json=wanted)
    assert changed.status_code == 200, changed.text
    assert alex.get("/v1/settings").json() == wanted
    # Another company's settings are its own.
    assert outsider.get("/v1/settings").json() == defaults.json()

    # Off: every connection of the company stops (its lease is refused) and keeps its
    # state; on again: leased, and synced at once.
    off = admin.put("/v1/admin/settings", json={**wanted, "connectwise_enabled": False})
    assert off.status_code == 200, off.text
    refused(lease(system, integration_id), 404, "turned off")
    assert admin.get(f"/v1/admin/integrations/{integration_id}").json()["status"] == "active"
    on = admin.put("/v1/admin/settings", json=wanted)
    assert on.status_code == 200, on.text
    assert lease(system, integration_id).status_code == 200
    assert lifecycle(system, integration_id)[-1] == events.INTEGRATION_RESUMED
    audit = admin.get("/v1/admin/audit", params={"action": "settings.changed"}).json()
    assert [a["detail"]["changed"].get("connectwise_enabled") for a in audit[:2]] == [
        {"from": False, "to": True},
        {"from": True, "to": False},
    ]
    assert all(a["user_id"] == admin_id for a in audit)


def test_a_paused_connection_still_has_its_callbacks_removed_when_disconnected(
    system: EmbeddedStack,
) -> None:
    """A pause refuses every lease but the one that cleans up: disconnecting a paused
    connection (or one of a company with ConnectWise off) still removes its callbacks."""
    tenant, admin_id = new_tenant(), person("admin")
    with auth_service(system, admin_id, tenant, roles=("admin",)) as admin:
        connected = admin.post(CONNECT, json=api_member_keys(system))
        assert connected.status_code == 201, connected.text
        one = f"/v1/admin/integrations/{connected.json()['id']}"
        assert admin.post(f"{one}/pause").status_code == 200
        refused(lease(system, connected.json()["id"]), 404)
        gone = admin.delete(one)
        assert gone.status_code == 200, gone.text
        [record] = admin.get(
            "/v1/admin/audit",
            params={"integration_id": connected.json()["id"], "action": "disconnected"},
        ).json()
        assert record["detail"]["webhooks_removed"] is True
        leases = admin.get(
            "/v1/admin/audit",
            params={"integration_id": connected.json()["id"], "action": "credentials.leased"},
        ).json()
        assert [r["detail"]["caller"] for r in leases if r["detail"].get("cleanup")] == [
            "connector-connectwise/cleanup"
        ]
