"""A ConnectWise company in a sandbox as one of its members sees it, asked over the
documented API with the member's own keys — the truth the dashboard is compared with —
and the sandbox's admin API that changes it."""

from __future__ import annotations

from typing import Any

import httpx

from syntaskio_devstack.stack import DEV_CONNECTWISE_CLIENT_ID, EmbeddedStack


class SandboxCompany:
    def __init__(self, system: EmbeddedStack, sandbox: str, member: str) -> None:
        self.member = member
        self.url = system.url(sandbox)
        self.site = system.site_of(sandbox)
        self.admin = httpx.Client(base_url=f"{self.url}/_sandbox", timeout=30)
        keys = self.admin.get("/api-keys").json()
        self.keys: dict[str, Any] = next(k for k in keys if k["member_identifier"] == member)
        info = httpx.get(f"{self.url}/login/companyinfo/{self.keys['company_id']}").json()
        self.api = httpx.Client(
            base_url=f"{self.url}/{info['Codebase']}apis/3.0/",
            auth=(f"{self.keys['company_id']}+{self.keys['public_key']}", self.keys["private_key"]),
            headers={"clientId": DEV_CONNECTWISE_CLIENT_ID},
            timeout=30,
        )

    def connection(self) -> dict[str, str]:
        """The body that connects this member with API keys."""
        return {
            "site": f"http://{self.site}",
            "company_id": self.keys["company_id"],
            "public_key": self.keys["public_key"],
            "private_key": self.keys["private_key"],
        }

    def listing(self, path: str, conditions: str) -> list[dict[str, Any]]:
        """Every page, by number, as the documented list paging goes."""
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            response = self.api.get(
                path, params={"conditions": conditions, "pageSize": 1000, "page": page}
            )
            response.raise_for_status()
            found += response.json()
            if 'rel="next"' not in response.headers.get("Link", ""):
                return found
            page += 1

    def assigned_open_tickets(self) -> dict[str, dict[str, Any]]:
        """Worked out here from the sandbox's answers, by id: open tickets the member
        owns, is a resource on or has an open "S" entry for, except those of closed
        projects."""
        member = self.member
        entries = self.listing(
            "schedule/entries",
            f'type/identifier = "S" and member/identifier = "{member}" and doneFlag = false',
        )
        scheduled = {e["objectId"] for e in entries}
        closed = {p["id"] for p in self.listing("project/projects", "closedFlag = true")}
        mine = {}
        for path in ("service/tickets", "project/tickets"):
            for ticket in self.listing(path, "closedFlag = false"):
                if ticket.get("project", {}).get("id") in closed:
                    continue
                owner = (ticket.get("owner") or {}).get("identifier")
                resources = [r.strip() for r in ticket.get("resources", "").split(",")]
                if owner == member or member in resources or ticket["id"] in scheduled:
                    mine[str(ticket["id"])] = ticket
        return mine

    def assigned_open_ticket_ids(self) -> set[str]:
        return set(self.assigned_open_tickets())

    def requests(self) -> dict[str, int]:
        """What the member's keys (the connector's) asked, by endpoint."""
        callers = self.admin.get("/stats").json()["by_caller"]
        counts: dict[str, int] = callers[f"{self.keys['company_id']}+{self.keys['public_key']}"][
            "by_path"
        ]
        return counts
