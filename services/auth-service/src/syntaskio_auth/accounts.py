"""What auth-service asks ConnectWise: where a site's API lives, whose credentials these
are, which members there are (to map technicians to), and (for impersonation) fresh
member keys. Every call goes through the SSRF guard."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from syntaskio_common.connectwise import (
    ApiKeyCredentials,
    ConnectWiseClient,
    ConnectWiseError,
    Credentials,
    RetryPolicy,
    Unavailable,
    api_base_url,
    fetch_codebase,
)
from syntaskio_common.connectwise_conditions import F, all_of, any_of
from syntaskio_common.egress import SitePolicy, SiteRejected, check_site
from syntaskio_common.integrations import Integration
from syntaskio_common.problems import Problem
from syntaskio_common.task import parse_timestamp

# What a member lookup reads of a member.
MEMBER_FIELDS = ("id", "identifier", "firstName", "lastName", "officeEmail", "primaryEmail",
                 "inactiveFlag")  # fmt: skip
# E-mails per member query: two `in` lists of this many keep the URL well under 4 kB.
EMAILS_PER_QUERY = 25


@dataclass(frozen=True)
class Site:
    site: str  # as the user typed it
    site_url: str  # https://host
    company_id: str
    codebase: str
    api_base_url: str

    @classmethod
    def of(cls, integration: Integration) -> Site:
        """The site a stored connection was made to (checked then, and by the guarded
        transport again on every call)."""
        return cls(
            integration.site,
            integration.site_url,
            integration.company_id,
            integration.codebase,
            integration.api_base_url,
        )


@dataclass(frozen=True)
class MintedKeys:
    public_key: str
    private_key: str
    expires_at: datetime


@dataclass
class ConnectWiseAccounts:
    http: httpx.AsyncClient
    site_policy: SitePolicy
    client_id: str

    def client(self, site: Site, credentials: Credentials) -> ConnectWiseClient:
        # A person is waiting: retry a hiccup once, quickly, rather than back off for long.
        return ConnectWiseClient(
            self.http,
            site.api_base_url,
            credentials,
            self.client_id,
            retry=RetryPolicy(max_attempts=2, max_delay=1.0, max_retry_after=2.0),
        )

    async def resolve_site(self, site: str, company_id: str) -> Site:
        """Check the site (SSRF guard) and find its API through the company lookup."""
        try:
            site_url = await check_site(site, self.site_policy)
        except SiteRejected as error:
            raise Problem(400, str(error), title="Site not allowed") from error
        with upstream_problems():
            codebase = await fetch_codebase(self.http, site_url, company_id)
        if codebase is None:
            raise Problem(
                400,
                f"ConnectWise does not know the company id {company_id!r} on this site.",
                title="Unknown company",
            )
        return Site(site, site_url, company_id, codebase, api_base_url(site_url, codebase))

    async def member(
        self, site: Site, credentials: Credentials, wanted: str | None = None
    ) -> dict[str, Any]:
        """The member whose work to show: the credentials' own member, or the one named
        by identifier or e-mail (for keys that belong to an integration member)."""
        client = self.client(site, credentials)
        await client.get("system/info")
        if wanted is None:
            found = await client.get("system/myMembers")
            member = found[0] if isinstance(found, list) and found else found
        else:
            try:
                named = all_of(
                    any_of(F("identifier") == wanted, F("officeEmail") == wanted),
                    F("inactiveFlag").eq(False),
                )
            except ValueError as error:
                raise Problem(400, f"Invalid member: {error}", title="Invalid member") from error
            matches = await client.get("system/members", {"pageSize": 2}, conditions=named)
            if not isinstance(matches, list) or len(matches) != 1:
                raise Problem(
                    400,
                    f"ConnectWise has no single active member {wanted!r}.",
                    title="Unknown member",
                )
            member = matches[0]
        if not isinstance(member, dict) or not member.get("identifier"):
            raise Problem(502, "ConnectWise did not say which member the credentials belong to.")
        return member

    async def member_by_identifier(
        self, site: Site, credentials: Credentials, identifier: str
    ) -> dict[str, Any] | None:
        """The member with this identifier (active or not), or None."""
        found = await self.client(site, credentials).get(
            "system/members",
            {"pageSize": 2},
            conditions=F("identifier") == identifier,
            fields=MEMBER_FIELDS,
        )
        if not isinstance(found, list) or not found or not isinstance(found[0], dict):
            return None
        return found[0]

    async def members_by_email(
        self, site: Site, credentials: Credentials, emails: Sequence[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """The active members whose `officeEmail` or `primaryEmail` is one of `emails`,
        by e-mail (lower-cased). ConnectWise compares text ignoring case; what comes back
        is compared here again, ignoring case, so only an exact address counts."""
        client = self.client(site, credentials)
        wanted = sorted({email.casefold() for email in emails})
        found: dict[str, dict[str, dict[str, Any]]] = {}
        for start in range(0, len(wanted), EMAILS_PER_QUERY):
            chunk = wanted[start : start + EMAILS_PER_QUERY]
            condition = all_of(
                any_of(F("officeEmail").in_(chunk), F("primaryEmail").in_(chunk)),
                F("inactiveFlag").eq(False),
            )
            async for page in client.pages(
                "system/members", conditions=condition, fields=MEMBER_FIELDS
            ):
                for member in page:
                    if not isinstance(member, dict) or member.get("inactiveFlag"):
                        continue
                    if not member.get("identifier"):
                        continue
                    for field in ("officeEmail", "primaryEmail"):
                        address = str(member.get(field) or "").casefold()
                        if address in chunk:
                            found.setdefault(address, {})[str(member["identifier"])] = member
        return {address: list(members.values()) for address, members in found.items()}

    async def mint_member_keys(
        self, site: Site, integration_keys: ApiKeyCredentials, member_identifier: str
    ) -> MintedKeys:
        """Short-lived keys acting as the member (`POST /system/members/{id}/tokens`)."""
        client = self.client(site, integration_keys)
        minted = await client.post(f"system/members/{member_identifier}/tokens")
        if (
            not isinstance(minted, dict)
            or not minted.get("publicKey")
            or not minted.get("privateKey")
        ):
            raise ConnectWiseError(502, "UnexpectedBody", "no key pair in the token response")
        return MintedKeys(
            public_key=str(minted["publicKey"]),
            private_key=str(minted["privateKey"]),
            # Without an expiration, assume the shortest lifetime ConnectWise documents.
            expires_at=parse_timestamp(minted.get("expiration"))
            or datetime.now(UTC) + timedelta(hours=1),
        )


@contextmanager
def upstream_problems() -> Iterator[None]:
    """ConnectWise and network failures as problems a user can act on."""
    try:
        yield
    except (Unavailable, httpx.HTTPError) as error:
        raise Problem(
            502, "ConnectWise could not be reached.", title="Upstream unreachable"
        ) from error
    except ConnectWiseError as error:
        if error.status in (401, 403):
            raise Problem(
                400, "ConnectWise rejected the credentials.", title="Invalid credentials"
            ) from error
        if error.status == 404:
            raise Problem(400, f"ConnectWise: {error.message}", title="Not found") from error
        raise Problem(
            502, f"ConnectWise answered with an error: {error.message}", title="Upstream error"
        ) from error
    except SiteRejected as error:
        raise Problem(400, str(error), title="Site not allowed") from error
