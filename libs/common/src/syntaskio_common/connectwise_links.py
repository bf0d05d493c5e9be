"""Deep links into ConnectWise's own web UI (`…/{codebase}services/system_io/…`), built
from an integration's API base URL (`…/{codebase}apis/3.0/`). The `openrecord.rails`
router and its `recordType` values (`ProjectHeaderFV`, `ContactFV`) are what public
ConnectWise client libraries and browser extensions link to (e.g. the Go client
`…/openrecord.rails?locale=en_US&recordType=ContactFV&companyName=…&recid=…`)."""

from __future__ import annotations

from urllib.parse import urlencode


def _web_base(api_base_url: str) -> str:
    return api_base_url.removesuffix("apis/3.0/")


def ticket_url(api_base_url: str, company_id: str, ticket_id: str) -> str:
    """A service or project ticket."""
    query = urlencode({"service_recid": ticket_id, "companyName": company_id})
    return f"{_web_base(api_base_url)}services/system_io/Service/fv_sr100_request.rails?{query}"


def _record_url(api_base_url: str, company_id: str, record_type: str, record_id: str) -> str:
    query = urlencode({"recordType": record_type, "recid": record_id, "companyName": company_id})
    return f"{_web_base(api_base_url)}services/system_io/router/openrecord.rails?{query}"


def project_url(api_base_url: str, company_id: str, project_id: str) -> str:
    """A project (its phases have no page of their own)."""
    return _record_url(api_base_url, company_id, "ProjectHeaderFV", project_id)


def contact_url(api_base_url: str, company_id: str, contact_id: str) -> str:
    """A company's contact."""
    return _record_url(api_base_url, company_id, "ContactFV", contact_id)
