"""Which ConnectWise member each technician is, under the tenant's connection.

A mapping is proposed by e-mail (a member's `officeEmail` or `primaryEmail` equals the
e-mail the identity provider verified for the user), requested by the technician, or set
by an admin; only a confirmed one is synced (it is in the credential lease's `members`),
and only an admin confirms. Every change is audited, naming who made it; a change to the
confirmed ones is announced (`integration.members_changed`) so the connector syncs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syntaskio_auth.accounts import ConnectWiseAccounts, Site, upstream_problems
from syntaskio_auth.announcements import Announcements
from syntaskio_auth.mapping_store import MappingStore, MemberTaken
from syntaskio_auth.renewal import CredentialLeases
from syntaskio_auth.repository import PROVIDER, IntegrationRepository, Owner
from syntaskio_auth.tenant_users import TenantUsers
from syntaskio_common import events
from syntaskio_common.connectwise import Credentials
from syntaskio_common.integrations import ConnectionScope, Integration, IntegrationStatus
from syntaskio_common.mappings import (
    MappingChange,
    MappingOrigin,
    MappingRequest,
    MappingState,
    MemberMapping,
    TenantConnectionView,
    TenantUser,
)
from syntaskio_common.problems import Problem
from syntaskio_common.sessions import UserSession

logger = logging.getLogger(__name__)
# Who proposes by e-mail.
SYSTEM = "system"
# ConnectWise can be asked about the members only while the credentials are kept.
_USABLE = (IntegrationStatus.ACTIVE, IntegrationStatus.PAUSED)


@dataclass
class MemberMappings:
    store: MappingStore
    users: TenantUsers
    repository: IntegrationRepository
    accounts: ConnectWiseAccounts
    leases: CredentialLeases
    announcements: Announcements

    # -- finding the connection ------------------------------------------------------------

    async def tenant_connection(self, admin: UserSession, integration_id: str) -> Integration:
        """The admin's tenant connection with this id; 404 for a personal connection or
        another tenant's, as for an id that does not exist."""
        found = await self.repository.get_for_tenant(admin.tenant_id, integration_id)
        if found is None or found.scope is not ConnectionScope.TENANT:
            raise Problem(404, "No company connection with this id.")
        return found

    async def _own_tenant_connection(self, user: UserSession) -> Integration:
        found = await self.repository.find_for_owner(Owner.tenant(user.tenant_id), PROVIDER)
        if found is None:
            raise Problem(404, "Your company has not connected ConnectWise.")
        return found

    # -- what admins do --------------------------------------------------------------------

    async def of_integration(self, integration: Integration) -> list[MemberMapping]:
        return await self.store.of_integration(integration)

    async def propose(self, actor: UserSession, integration: Integration) -> list[MemberMapping]:
        """Propose a member for every user with a verified e-mail and no confirmed or
        requested mapping: the one active member whose office or primary e-mail is theirs
        (none when several are, or when that member is confirmed for someone else).
        Proposals are never synced; they wait for an admin. Returns every mapping."""
        existing = {m.user_id: m for m in await self.store.of_integration(integration)}
        taken = {
            m.member_identifier for m in existing.values() if m.state is MappingState.CONFIRMED
        }
        candidates = [
            user
            for user in await self.users.in_tenant(integration.tenant_id)
            if user.email
            and (
                user.user_id not in existing
                or existing[user.user_id].state is MappingState.PROPOSED
            )
        ]
        if candidates:
            credentials = await self._credentials(integration)
            with upstream_problems():
                members = await self.accounts.members_by_email(
                    Site.of(integration), credentials, [u.email for u in candidates if u.email]
                )
            for user in candidates:
                assert user.email is not None
                matches = members.get(user.email.casefold(), [])
                if len(matches) != 1 or matches[0]["identifier"] in taken:
                    continue
                previous = existing.get(user.user_id)
                if previous and previous.member_identifier == matches[0]["identifier"]:
                    continue  # proposed already
                proposal = _mapping(
                    integration,
                    user,
                    matches[0],
                    MappingState.PROPOSED,
                    MappingOrigin.EMAIL,
                    SYSTEM,
                )
                if await self.store.put(proposal, over=(MappingState.PROPOSED,)):
                    await self._audit("mapping.proposed", actor, proposal)
        return await self.store.of_integration(integration)

    async def propose_after_connecting(self, actor: UserSession, integration: Integration) -> None:
        """Proposals right after the company connected; a failure here leaves the
        connection made (the admin can propose again)."""
        if integration.scope is not ConnectionScope.TENANT:
            return
        try:
            await self.propose(actor, integration)
        except Problem as problem:
            logger.warning(
                "could not propose member mappings",
                extra={"integration_id": integration.id, "reason": problem.detail},
            )

    async def confirm(
        self, admin: UserSession, integration: Integration, user_id: str, change: MappingChange
    ) -> MemberMapping:
        """Map the user to the member, confirmed: their work is synced from now on."""
        user = await self.users.get(integration.tenant_id, user_id)
        if user is None:
            raise Problem(404, "No one with this id has signed in to your company.")
        await self._refuse_when_connected_personally(integration, user)
        member = await self._member(integration, change.member_identifier)
        previous = await self.store.get(integration, user_id)
        # Confirming what was proposed or requested keeps where it came from.
        kept = previous if previous and previous.member_identifier == member["identifier"] else None
        origin = kept.origin if kept else MappingOrigin.ADMIN
        confirmed = _mapping(
            integration, user, member, MappingState.CONFIRMED, origin, admin.user_id
        )
        await self._refuse_taken(integration, confirmed)
        try:
            await self.store.put(confirmed)
        except MemberTaken:
            raise _taken(confirmed.member_identifier) from None
        await self._audit("mapping.confirmed", admin, confirmed)
        if not (kept and kept.state is MappingState.CONFIRMED):
            await self._members_changed(integration, confirmed.updated_at)
        return confirmed

    async def remove(self, admin: UserSession, integration: Integration, user_id: str) -> None:
        removed = await self.store.delete(integration, user_id)
        if removed is None:
            raise Problem(404, "This user has no mapping on this connection.")
        await self._audit("mapping.removed", admin, removed, previous_state=removed.state.value)
        if removed.state is MappingState.CONFIRMED:
            await self._members_changed(integration, datetime.now(UTC))

    async def _refuse_when_connected_personally(
        self, integration: Integration, user: TenantUser
    ) -> None:
        """One source of a person's ConnectWise work: the company's connection does not
        also sync someone who has a connection of their own (each ticket would come twice,
        and one connection's disconnect would take the other's tasks)."""
        own = await self.repository.find_for_owner(
            Owner(integration.tenant_id, user.user_id, ConnectionScope.PERSONAL), PROVIDER
        )
        if own is not None and own.status is not IntegrationStatus.DISCONNECTED:
            raise Problem(
                409,
                f"{user.name or user.user_id} has a ConnectWise connection of their own: it "
                "must be disconnected (by them, or here) before the company's connection "
                "syncs their work.",
                title="Connected personally",
            )

    async def refuse_personal_when_mapped(self, user: UserSession) -> None:
        """The other way round: someone the company's connection syncs does not connect
        their own ConnectWise account too."""
        company = await self.repository.find_for_owner(Owner.tenant(user.tenant_id), PROVIDER)
        if company is None or company.status is IntegrationStatus.DISCONNECTED:
            return
        mapping = await self.store.get(company, user.user_id)
        if mapping is not None and mapping.state is MappingState.CONFIRMED:
            raise Problem(
                409,
                "Your company's ConnectWise connection already syncs your work (as member "
                f"{mapping.member_identifier!r}); an admin of your company can remove your "
                "mapping if you need a connection of your own.",
                title="Synced by your company",
            )

    # -- what technicians do ---------------------------------------------------------------

    async def view(self, user: UserSession) -> TenantConnectionView:
        integration = await self._own_tenant_connection(user)
        return TenantConnectionView(
            integration_id=integration.id,
            site=integration.site,
            company_id=integration.company_id,
            status=integration.status,
            mapping=await self.store.get(integration, user.user_id),
        )

    async def request(self, user: UserSession, wanted: MappingRequest) -> MemberMapping:
        """The technician asks to be mapped to a member (named, or found by their verified
        e-mail); an admin confirms it. A confirmed mapping is changed only by an admin."""
        integration = await self._own_tenant_connection(user)
        existing = await self.store.get(integration, user.user_id)
        if existing is not None and existing.state is MappingState.CONFIRMED:
            raise _confirmed_already()
        if wanted.member_identifier is not None:
            member = await self._member(integration, wanted.member_identifier)
        else:
            member = await self._member_by_email(integration, user)
        requested = _mapping(
            integration,
            user,
            member,
            MappingState.REQUESTED,
            MappingOrigin.TECHNICIAN,
            user.user_id,
        )
        await self._refuse_taken(integration, requested)
        if not await self.store.put(
            requested, over=(MappingState.PROPOSED, MappingState.REQUESTED)
        ):
            raise _confirmed_already()  # confirmed meanwhile
        await self._audit("mapping.requested", user, requested)
        return requested

    # -- ConnectWise -----------------------------------------------------------------------

    async def _credentials(self, integration: Integration) -> Credentials:
        if integration.status not in _USABLE:
            raise Problem(
                409,
                f"The connection is {integration.status.value}: reconnect it first.",
                title="Connection not usable",
            )
        return await self.leases.credentials(integration)

    async def _member(self, integration: Integration, identifier: str) -> dict[str, Any]:
        credentials = await self._credentials(integration)
        with upstream_problems():
            member = await self.accounts.member_by_identifier(
                Site.of(integration), credentials, identifier
            )
        if member is None:
            raise Problem(422, f"ConnectWise has no member {identifier!r}.", title="Unknown member")
        if member.get("inactiveFlag"):
            raise Problem(
                422, f"ConnectWise member {identifier!r} is inactive.", title="Inactive member"
            )
        return member

    async def _member_by_email(self, integration: Integration, user: UserSession) -> dict[str, Any]:
        if not user.email:
            raise Problem(
                422,
                "Your sign-in has no verified e-mail address: name your ConnectWise member.",
                title="No e-mail address",
            )
        credentials = await self._credentials(integration)
        with upstream_problems():
            members = await self.accounts.members_by_email(
                Site.of(integration), credentials, [user.email]
            )
        matches = members.get(user.email.casefold(), [])
        if len(matches) != 1:
            raise Problem(
                422,
                f"ConnectWise has no single active member with the e-mail {user.email!r}: "
                "name your ConnectWise member.",
                title="No member with this e-mail",
            )
        return matches[0]

    # -- bookkeeping -----------------------------------------------------------------------

    async def _refuse_taken(self, integration: Integration, mapping: MemberMapping) -> None:
        holder = await self.store.holder(integration, mapping.member_identifier)
        if holder is not None and holder.user_id != mapping.user_id:
            raise _taken(mapping.member_identifier)

    async def _audit(
        self, action: str, actor: UserSession, mapping: MemberMapping, **detail: Any
    ) -> None:
        await self.repository.audit(
            action,
            tenant_id=mapping.tenant_id,
            integration_id=mapping.integration_id,
            user_id=actor.user_id,
            mapped_user_id=mapping.user_id,
            member_identifier=mapping.member_identifier,
            **detail,
        )

    async def _members_changed(self, integration: Integration, at: datetime) -> None:
        await self.announcements.publish(
            events.INTEGRATION_MEMBERS_CHANGED, integration, changed_at=at
        )


def _mapping(
    integration: Integration,
    user: TenantUser | UserSession,
    member: dict[str, Any],
    state: MappingState,
    origin: MappingOrigin,
    by: str,
) -> MemberMapping:
    name = " ".join(str(member.get(k) or "") for k in ("firstName", "lastName")).strip()
    return MemberMapping(
        integration_id=integration.id,
        tenant_id=integration.tenant_id,
        user_id=user.user_id,
        user_name=user.name,
        user_email=user.email,
        member_identifier=str(member["identifier"]),
        member_id=member.get("id") if isinstance(member.get("id"), int) else None,
        member_name=name or None,
        state=state,
        origin=origin,
        updated_at=datetime.now(UTC),
        updated_by=by,
    )


def _taken(identifier: str) -> Problem:
    return Problem(
        409,
        f"ConnectWise member {identifier!r} is already mapped to someone else.",
        title="Member already mapped",
    )


def _confirmed_already() -> Problem:
    return Problem(
        409,
        "Your mapping is confirmed; ask an admin of your company to change it.",
        title="Mapping confirmed",
    )
