"""Who is calling and may they: bearer checks, GDAP roles (emulator.access), and throttling, per API family."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import access
from ..errors import ApiError
from ..http import Request
from ..tenant import Tenant
from ..throttle import header_value
from ..tokens import EXCHANGE, GRAPH, PARTNER_CENTER, TokenError
from ..world import Partner

if TYPE_CHECKING:
    from ..app import Emulator

_GRAPH_401 = {
    "missing": "Access token is empty.",
    "malformed": "Access token validation failure.",
    "expired": "Access token has expired or is not yet valid.",
    "audience": "Access token validation failure. Invalid audience.",
    "unknown": "Access token validation failure.",
}


def bearer(em: Emulator, req: Request, resource: str, code: str) -> tuple[dict[str, Any], Partner]:
    """Verify the token for `resource`; it must come from a partner app still registered."""
    try:
        claims = em.signer.verify(req.header(b"authorization"), resource)
    except TokenError as refused:
        raise ApiError(401, code, _GRAPH_401[refused.reason]) from None
    partner = em.world.partners.get(claims["appid"])
    if partner is None:
        raise ApiError(401, code, _GRAPH_401["unknown"])
    return claims, partner


def throttle(em: Emulator, family: str, key: str, message: str) -> None:
    verdict = em.throttle.check(family, key, em.faults.rate(family), em.faults.retry_after_growth)
    if verdict.retry_after is None:
        return
    em.stats.count("throttled", key)
    if verdict.violation:
        em.stats.count("retry_after_violations", key)
    seconds = header_value(verdict.retry_after)
    raise ApiError(429, "TooManyRequests", message.format(seconds=seconds), headers={"Retry-After": seconds})


def _allowed(tenant: Tenant, partner: Partner, operation: access.Operation) -> bool:
    """The partner acts in a customer tenant through an active GDAP relationship, within its roles."""
    if tenant.tenant_id == partner.tenant_id:
        return True
    return tenant.gdap_grants_access and access.allows(tenant.gdap_roles, operation)


def graph_tenant(em: Emulator, req: Request, operation: access.Operation = "read") -> Tenant:
    """The tenant a Graph token is for, after throttling and the GDAP role check; due timers applied."""
    claims, partner = bearer(em, req, GRAPH, "InvalidAuthenticationToken")
    tenant_id = claims["tid"]
    req.tenant_id = tenant_id
    throttle(em, "graph", tenant_id, "Too many requests. Retry after {seconds} seconds.")
    tenant = em.world.tenants.get(tenant_id)
    if tenant is None or not _allowed(tenant, partner, operation):
        raise ApiError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    tenant.settle(em.clock.time())
    return tenant


def graph_partner(em: Emulator, req: Request) -> Partner:
    """For partner-tenant Graph calls (GDAP relationships)."""
    claims, partner = bearer(em, req, GRAPH, "InvalidAuthenticationToken")
    req.tenant_id = claims["tid"]
    throttle(em, "graph", claims["tid"], "Too many requests. Retry after {seconds} seconds.")
    if claims["tid"] != partner.tenant_id:
        raise ApiError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    return partner


def partner_center(em: Emulator, req: Request) -> Partner:
    claims, partner = bearer(em, req, PARTNER_CENTER, "900")
    if claims["tid"] != partner.tenant_id:
        raise ApiError(401, "900", "The access token is not for the partner's own tenant.")
    req.tenant_id = partner.tenant_id
    throttle(em, "partner_center", partner.tenant_id,
             "Rate limit is exceeded. Try again in {seconds} seconds.")
    return partner


def exchange_tenant(em: Emulator, req: Request, path_tenant: str) -> Tenant:
    claims, partner = bearer(em, req, EXCHANGE, "Microsoft.Exchange.Security.Authorization.UnauthorizedAccessException")
    tenant = em.world.resolve_tenant(path_tenant)
    if tenant is None or tenant.tenant_id != claims["tid"]:
        raise ApiError(401, "Microsoft.Exchange.Security.Authorization.UnauthorizedAccessException",
                       "The token's tenant does not match the organization in the URL.")
    req.tenant_id = tenant.tenant_id
    throttle(em, "exchange", tenant.tenant_id,
             "The request was throttled: the tenant's admin API budget is used up. Try again in {seconds} seconds.")
    if not _allowed(tenant, partner, "exchange"):
        raise ApiError(403, "Microsoft.Exchange.Security.Authorization.UnauthorizedAccessException",
                       "The user or application is not authorized to access this organization.")
    tenant.settle(em.clock.time())
    return tenant
