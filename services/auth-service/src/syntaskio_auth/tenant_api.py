"""HTTP routes of the tenant's own connection: what admins do (connect the company,
map technicians to ConnectWise members, pause, resume, disconnect any connection of the
tenant, read the audit log) and what a technician sees of it (their mapping).

Admin routes take `AdminUser` (403 for anyone without the admin role, before anything is
asked) and find everything within the admin's tenant: another tenant's connection is
answered 404, exactly as an id that does not exist.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from syntaskio_auth.api import (
    CONNECT_LIMIT,
    MAPPING_LIMIT,
    AdminUser,
    CompanySettingsDep,
    ConnectionsDep,
    CurrentUser,
    Limiter,
    MappingsDep,
    TenantUsersDep,
)
from syntaskio_auth.models import OAuthStart
from syntaskio_auth.repository import AuditQuery, Owner
from syntaskio_common import events
from syntaskio_common.connection_requests import ApiKeyConnectionRequest, OAuthStartRequest
from syntaskio_common.integrations import Integration, IntegrationStatus
from syntaskio_common.mappings import (
    AuditRecord,
    MappingChange,
    MappingRequest,
    MemberMapping,
    TenantConnectionView,
    TenantUser,
)
from syntaskio_common.tenant_settings import TenantSettings

# Registered before the personal routes (app.py): `/v1/integrations/tenant` is not the
# id of a connection.
tenant = APIRouter()

IntegrationId = Annotated[str, Path(min_length=1, max_length=64)]
# A user id may hold any character an identity provider puts in `sub`, "/" included.
UserId = Annotated[str, Path(min_length=1, max_length=256)]


# -- the tenant's people ---------------------------------------------------------------


@tenant.get("/v1/admin/users", tags=["admin"])
async def tenant_users(admin: AdminUser, users: TenantUsersDep) -> list[TenantUser]:
    """Everyone who has signed in to the admin's company (whom an admin can map)."""
    return await users.in_tenant(admin.tenant_id)


# -- connecting the company ------------------------------------------------------------


@tenant.post(
    "/v1/admin/integrations/connectwise/api-key",
    tags=["admin"],
    status_code=status.HTTP_201_CREATED,
)
async def connect_tenant_api_key(
    body: ApiKeyConnectionRequest,
    admin: AdminUser,
    connections: ConnectionsDep,
    mappings: MappingsDep,
    limiter: Limiter,
) -> Integration:
    """Connect the company once with its integration (API) member's keys; reconnecting
    replaces the keys and keeps the connection. Technicians are then proposed by e-mail."""
    await limiter.hit(CONNECT_LIMIT, "connect", admin.tenant_id, admin.user_id)
    integration = await connections.connect_api_key(admin, Owner.tenant(admin.tenant_id), body)
    await mappings.propose_after_connecting(admin, integration)
    return integration


@tenant.post("/v1/admin/integrations/connectwise/oauth/start", tags=["admin"])
async def start_tenant_oauth(
    body: OAuthStartRequest, admin: AdminUser, connections: ConnectionsDep, limiter: Limiter
) -> OAuthStart:
    """Connect the company with OAuth: the same callback as a personal connection
    finishes it, for the admin's session only."""
    await limiter.hit(CONNECT_LIMIT, "connect", admin.tenant_id, admin.user_id)
    return await connections.start_oauth(admin, Owner.tenant(admin.tenant_id), body)


# -- any connection of the tenant ------------------------------------------------------


@tenant.get("/v1/admin/integrations/{integration_id}", tags=["admin"])
async def get_tenant_integration(
    integration_id: IntegrationId, admin: AdminUser, connections: ConnectionsDep
) -> Integration:
    return await connections.of_tenant(admin, integration_id)


@tenant.delete("/v1/admin/integrations/{integration_id}", tags=["admin"])
async def disconnect_tenant_integration(
    integration_id: IntegrationId, admin: AdminUser, connections: ConnectionsDep
) -> Integration:
    """Disconnect any connection of the company (the audit record names the admin)."""
    return await connections.disconnect(admin, await connections.of_tenant(admin, integration_id))


@tenant.post("/v1/admin/integrations/{integration_id}/pause", tags=["admin"])
async def pause_integration(
    integration_id: IntegrationId, admin: AdminUser, connections: ConnectionsDep
) -> Integration:
    """No syncing and no write-back until resumed (409 unless active)."""
    return await connections.pause(admin, await connections.of_tenant(admin, integration_id))


@tenant.post("/v1/admin/integrations/{integration_id}/resume", tags=["admin"])
async def resume_integration(
    integration_id: IntegrationId, admin: AdminUser, connections: ConnectionsDep
) -> Integration:
    """Active again; the connector syncs at once (409 unless paused)."""
    return await connections.resume(admin, await connections.of_tenant(admin, integration_id))


# -- member mapping --------------------------------------------------------------------


@tenant.get("/v1/admin/integrations/{integration_id}/mappings", tags=["admin"])
async def list_mappings(
    integration_id: IntegrationId, admin: AdminUser, mappings: MappingsDep
) -> list[MemberMapping]:
    return await mappings.of_integration(await mappings.tenant_connection(admin, integration_id))


@tenant.post("/v1/admin/integrations/{integration_id}/mappings/propose", tags=["admin"])
async def propose_mappings(
    integration_id: IntegrationId, admin: AdminUser, mappings: MappingsDep, limiter: Limiter
) -> list[MemberMapping]:
    """Propose a member, by e-mail, to every user with no confirmed or requested mapping;
    returns every mapping of the connection. Proposals are not synced until confirmed."""
    integration = await mappings.tenant_connection(admin, integration_id)
    await limiter.hit(MAPPING_LIMIT, "mapping", admin.tenant_id, admin.user_id)
    return await mappings.propose(admin, integration)


@tenant.put("/v1/admin/integrations/{integration_id}/mappings/{user_id:path}", tags=["admin"])
async def confirm_mapping(
    integration_id: IntegrationId,
    user_id: UserId,
    body: MappingChange,
    admin: AdminUser,
    mappings: MappingsDep,
    limiter: Limiter,
) -> MemberMapping:
    """Map the user to the member, confirmed (synced from now on). 404: no such user;
    422: ConnectWise has no such active member; 409: the member is someone else's."""
    integration = await mappings.tenant_connection(admin, integration_id)
    await limiter.hit(MAPPING_LIMIT, "mapping", admin.tenant_id, admin.user_id)
    return await mappings.confirm(admin, integration, user_id, body)


@tenant.delete(
    "/v1/admin/integrations/{integration_id}/mappings/{user_id:path}",
    tags=["admin"],
    status_code=status.HTTP_204_NO_CONTENT,
)
async def remove_mapping(
    integration_id: IntegrationId, user_id: UserId, admin: AdminUser, mappings: MappingsDep
) -> None:
    integration = await mappings.tenant_connection(admin, integration_id)
    await mappings.remove(admin, integration, user_id)


# -- the audit log ---------------------------------------------------------------------


@tenant.get("/v1/admin/audit", tags=["admin"])
async def audit_log(
    admin: AdminUser,
    connections: ConnectionsDep,
    integration_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[str | None, Query(max_length=256)] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditRecord]:
    """Who connected, leased, paused, mapped and disconnected what in the admin's
    company, and when: newest first. `since` without a zone is UTC."""
    query = AuditQuery(admin.tenant_id, integration_id, action, user_id, since, limit)
    return await connections.repository.audit_records(query)


# -- what a technician sees ------------------------------------------------------------


@tenant.get("/v1/integrations/tenant", tags=["integrations"])
async def tenant_connection(user: CurrentUser, mappings: MappingsDep) -> TenantConnectionView:
    """The company's connection and the caller's own mapping (404: none connected)."""
    return await mappings.view(user)


@tenant.post("/v1/integrations/tenant/mapping-request", tags=["integrations"])
async def request_mapping(
    body: MappingRequest, user: CurrentUser, mappings: MappingsDep, limiter: Limiter
) -> MemberMapping:
    """Ask to be mapped to a member (named, or found by the caller's verified e-mail);
    an admin confirms it. 422: no such member; 409: the mapping is confirmed already."""
    await limiter.hit(MAPPING_LIMIT, "mapping", user.tenant_id, user.user_id)
    return await mappings.request(user, body)


# -- the company's settings ------------------------------------------------------------


@tenant.get("/v1/settings", tags=["settings"])
async def company_settings(user: CurrentUser, settings: CompanySettingsDep) -> TenantSettings:
    """The company's settings, as every technician's actions use them."""
    return await settings.get(user.tenant_id)


@tenant.put("/v1/admin/settings", tags=["admin"])
async def change_company_settings(
    body: TenantSettings,
    admin: AdminUser,
    settings: CompanySettingsDep,
    connections: ConnectionsDep,
) -> TenantSettings:
    """Replace the company's settings (every one; one left out takes its default).
    Turning ConnectWise off stops every connection's syncing and write-back at once;
    turning it on again syncs the active ones at once."""
    before = await settings.replace(admin.tenant_id, body, admin.user_id)
    changed = {
        name: {"from": getattr(before, name), "to": getattr(body, name)}
        for name in TenantSettings.model_fields
        if getattr(before, name) != getattr(body, name)
    }
    if changed:
        await connections.repository.audit(
            "settings.changed", tenant_id=admin.tenant_id, user_id=admin.user_id, changed=changed
        )
    if body.connectwise_enabled != before.connectwise_enabled:
        # Off: like a pause of every connection (the connector stops claiming their
        # syncs instead of finding out at its next lease); on: resumed, synced at once.
        moved = (
            events.INTEGRATION_RESUMED if body.connectwise_enabled else events.INTEGRATION_PAUSED
        )
        turned = datetime.now(UTC)
        for integration in await connections.repository.list_for_tenant(admin.tenant_id):
            if integration.status is IntegrationStatus.ACTIVE:
                await connections.announcements.publish(moved, integration, changed_at=turned)
    return body
