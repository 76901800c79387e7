"""Who may act in a customer tenant: the partner apps consented there (CPV) and the GDAP roles granted.

What Microsoft documents (../shared/MICROSOFT.md, "Access to customer tenants"): a token for a customer
tenant needs the app's consent there (else 400 `unauthorized_client` AADSTS700016); a consent takes a
while to propagate; a call the relationship's roles do not allow is 403 `Authorization_RequestDenied`.

Where Microsoft does not say, the emulator decides here (unconfirmed, in this one place):
- a consent takes effect `consent_delay_s` (fault) after it was granted; seeded consents at once;
- a token for an API the consent did not grant (Graph, Exchange) is 400 `invalid_grant` AADSTS65001;
- app-only tokens in a customer tenant are held to the GDAP relationship's roles, as delegated (App+User)
  tokens are, so one model covers both credential kinds;
- which role allows what: reads need any role; creating, changing and deleting users User Administrator;
  licences License Administrator, User Administrator or Directory Writers (Graph's assignLicense page);
  Exchange admin cmdlets Exchange Administrator; Global Administrator allows everything.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from .clock import iso
from .errors import ApiError
from .tokens import EXCHANGE, GRAPH

GRAPH_APP = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP = "00000002-0000-0ff1-ce00-000000000000"
# The resource a token is for -> the enterprise application a consent must grant.
RESOURCE_APPS = {GRAPH: GRAPH_APP, EXCHANGE: EXCHANGE_APP}
ALL_GRANTS = frozenset(RESOURCE_APPS.values())

USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
LICENSE_ADMIN = "4d6ac14f-3453-41d0-bef9-a3e0c569773a"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
DIRECTORY_WRITERS = "9360feb5-f418-4baa-8175-e2a00bac4301"
# A relationship seeded active without roles grants what the engine needs.
DEFAULT_ROLES = (USER_ADMIN, LICENSE_ADMIN, EXCHANGE_ADMIN)

Operation = Literal["read", "users.write", "licences", "exchange"]
_ALLOWED: dict[str, frozenset[str]] = {
    "users.write": frozenset({USER_ADMIN, GLOBAL_ADMIN}),
    "licences": frozenset({LICENSE_ADMIN, USER_ADMIN, DIRECTORY_WRITERS, GLOBAL_ADMIN}),
    "exchange": frozenset({EXCHANGE_ADMIN, GLOBAL_ADMIN}),
}


@dataclass
class Consent:
    """One partner app's CPV consent in a tenant: when granted, when tokens start to work, for which APIs."""

    granted_at: float
    effective_at: float
    grants: frozenset[str]

    def view(self, client_id: str) -> dict[str, Any]:
        return {"application_id": client_id, "granted_at": iso(self.granted_at),
                "effective_at": iso(self.effective_at), "grants": sorted(self.grants)}


def allows(roles: Iterable[str], operation: Operation) -> bool:
    held = set(roles)
    if operation == "read":
        return bool(held)
    return bool(held & _ALLOWED[operation])


def missing_consent(consents: dict[str, Consent], client_id: str, key: str, now: float) -> ApiError | None:
    """AADSTS700016 while the app has no consent in the tenant, or its consent has not propagated yet."""
    consent = consents.get(client_id)
    if consent is None or consent.effective_at > now:
        return app_not_found(client_id, key)
    return None


def missing_grant(consent: Consent, client_id: str, resource: str) -> ApiError | None:
    """AADSTS65001 for a token to an API the consent did not grant."""
    needed = RESOURCE_APPS.get(resource)
    if needed is not None and needed not in consent.grants:
        return ApiError(400, "invalid_grant",
                        f"The user or administrator has not consented to use the application with ID "
                        f"'{client_id}'. Send an interactive authorization request for this user and resource.",
                        detail_code="65001")
    return None


def app_not_found(client_id: str, key: str) -> ApiError:
    return ApiError(400, "unauthorized_client",
                    f"Application with identifier '{client_id}' was not found in the directory '{key}'. This can "
                    "happen if the application has not been installed by the administrator of the tenant or "
                    "consented to by any user in the tenant. You may have sent your authentication request to the "
                    "wrong tenant.", detail_code="700016")


def check_roles(roles: list[str]) -> list[str]:
    """Seeded roles: template ids (GUID strings)."""
    if not isinstance(roles, list) or not all(isinstance(r, str) and len(r) == 36 for r in roles):
        raise ApiError(400, "invalid", "gdap_roles must be a list of role template ids")
    return list(dict.fromkeys(r.lower() for r in roles))
