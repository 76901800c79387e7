"""Microsoft Graph v1.0 for one customer tenant: domains, SKUs, users, licences, mailbox probe, delta."""
from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from shared.microsoft.caller import Caller
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import MailboxNotReady
from shared.microsoft.paging import DeltaPages, FetchPage, iter_pages

MAX_USERS_PAGE = 999


def _segment(value: str) -> str:
    # A UPN may hold '#' (guests: #EXT#) or '/', which would otherwise end or split the path.
    return quote(value, safe="@")


def _odata_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _select(select: Sequence[str] | None) -> dict[str, str]:
    return {"$select": ",".join(select)} if select else {}


class GraphClient:
    """Graph calls in the customer tenant `tenant_id`, throttled per tenant in every process."""

    def __init__(self, caller: Caller, credential: PartnerCredential, tenant_id: str) -> None:
        self._caller = caller
        self._credential = credential
        self.tenant_id = tenant_id
        self._base = caller.apis["graph"].base_url

    def _call(self, method: str, url: str, *, tenant: str | None = None, **kw: Any) -> httpx.Response:
        tenant = tenant or self.tenant_id
        return self._caller.call("graph", credential=self._credential, token_tenant=tenant,
                                 limit_key=f"graph:{tenant}", method=method,
                                 url=url if url.startswith("https://") else self._base + url, **kw)

    def _fetch(self, tenant: str | None = None, headers: Mapping[str, str] | None = None) -> FetchPage:
        def fetch(url: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
            return dict(self._call("GET", url, tenant=tenant, params=params, headers=headers).json())
        return fetch

    def _get_all(self, path: str, params: Mapping[str, Any] | None = None,
                 tenant: str | None = None) -> list[dict[str, Any]]:
        pages = iter_pages(self._fetch(tenant), self._base + path, params, self._base)
        return [item for page in pages for item in page]

    def gdap_relationships(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        """GDAP relationships between the partner and the customer (read in the PARTNER tenant)."""
        return self._get_all("/tenantRelationships/delegatedAdminRelationships",
                             {"$filter": f"customer/tenantId eq {_odata_literal(customer_tenant_id)}"},
                             tenant=self._credential.tenant_id)

    def domains(self) -> list[dict[str, Any]]:
        return self._get_all("/domains")

    def subscribed_skus(self) -> list[dict[str, Any]]:
        return self._get_all("/subscribedSkus")

    def find_user_by_upn(self, upn: str, select: Sequence[str] | None = None) -> dict[str, Any] | None:
        """The user with this UPN, or None (a filter answers 200 with nothing, not 404)."""
        params = {"$filter": f"userPrincipalName eq {_odata_literal(upn)}", **_select(select)}
        users = self._call("GET", "/users", params=params).json().get("value") or []
        return dict(users[0]) if users else None

    def get_user(self, id_or_upn: str, select: Sequence[str] | None = None) -> dict[str, Any]:
        """One user; NotFound also right after creation, until Graph has replicated it."""
        return dict(self._call("GET", f"/users/{_segment(id_or_upn)}", params=_select(select)).json())

    def create_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        # Not repeated here when the answer may have been lost (a create may have happened): the
        # pipeline made the attempt durable first and looks the user up before any second create.
        return dict(self._call("POST", "/users", json=dict(body), idempotent=False).json())

    def update_user(self, user_id: str, changes: Mapping[str, Any]) -> None:
        self._call("PATCH", f"/users/{_segment(user_id)}", json=dict(changes))

    def delete_user(self, user_id: str) -> None:
        self._call("DELETE", f"/users/{_segment(user_id)}")

    def member_of(self, user_id: str) -> list[dict[str, Any]]:
        """The groups, directory roles and administrative units the user is a direct member of, each with
        its `@odata.type` (`#microsoft.graph.directoryRole` for a role)."""
        return self._get_all(f"/users/{_segment(user_id)}/memberOf")

    def assign_licences(self, user_id: str, add: Sequence[Mapping[str, Any]],
                        remove: Sequence[str]) -> dict[str, Any]:
        # Graph requires both arrays, even when one is empty. Assigning is a set operation: repeatable.
        body = {"addLicenses": [dict(a) for a in add], "removeLicenses": list(remove)}
        return dict(self._call("POST", f"/users/{_segment(user_id)}/assignLicense", json=body,
                               idempotent=True).json())

    def mailbox_ready(self, user_id: str) -> bool:
        """True once Exchange Online serves the user's mailbox (check the licence first: same 404)."""
        try:
            self._call("GET", f"/users/{_segment(user_id)}/mailboxSettings")
        except MailboxNotReady:
            return False
        return True

    def iter_user_pages(self, select: Sequence[str] | None = None,
                        top: int = MAX_USERS_PAGE) -> Iterator[list[dict[str, Any]]]:
        params = {"$top": str(min(top, MAX_USERS_PAGE)), **_select(select)}
        return iter_pages(self._fetch(), self._base + "/users", params, self._base)

    def users_delta(self, delta_link: str | None = None, select: Sequence[str] | None = None,
                    page_size: int | None = None) -> DeltaPages:
        """A delta round: from scratch without a link, else only the changes since it.

        `page_size` asks for bigger pages (`Prefer: odata.maxpagesize`; delta ignores $top);
        Graph may cap it lower, so callers must not rely on the size they asked for.
        """
        headers = {"Prefer": f"odata.maxpagesize={page_size}"} if page_size else None
        if delta_link:
            return DeltaPages(self._fetch(headers=headers), delta_link, None, self._base)
        return DeltaPages(self._fetch(headers=headers), self._base + "/users/delta", _select(select), self._base)
