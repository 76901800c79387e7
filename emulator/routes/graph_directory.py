"""Graph v1.0 tenant-wide reads: domains, subscribedSkus, and the partner's GDAP relationships."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import catalog
from ..clock import iso
from ..http import Request, Response, json_response, route
from ..tenant import Tenant
from . import guard, odata
from .shapes import GRAPH_JSON

if TYPE_CHECKING:
    from ..app import Emulator

# A relationship lasts two years; one `expiring` ends within this many days.
_DURATION_DAYS = 730
_EXPIRING_DAYS = 7


def _collection(req: Request, entity_set: str, items: list[dict[str, Any]]) -> Response:
    body = {"@odata.context": f"{req.root}/v1.0/$metadata#{entity_set}", "value": items}
    return json_response(body, content_type=GRAPH_JSON)


async def list_domains(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req)
    items = [{
        "authenticationType": "Managed", "availabilityStatus": None, "id": d.name, "isAdminManaged": True,
        "isDefault": d.is_default, "isInitial": d.is_initial, "isRoot": True, "isVerified": d.verified,
        "supportedServices": ["Email", "OfficeCommunicationsOnline"] if d.verified else [],
        "passwordNotificationWindowInDays": 14, "passwordValidityPeriodInDays": 2147483647, "state": None,
    } for d in tenant.domains.values()]
    return _collection(req, "domains", items)


def subscribed_sku(tenant: Tenant, part_number: str) -> dict[str, Any]:
    sku = tenant.skus[part_number]
    return {
        "accountName": tenant.initial_domain.split(".")[0], "accountId": tenant.tenant_id, "appliesTo": "User",
        "capabilityStatus": "Enabled", "consumedUnits": sku.consumed,
        "id": f"{tenant.tenant_id}_{sku.sku_id}", "skuId": sku.sku_id, "skuPartNumber": sku.part_number,
        "subscriptionIds": [catalog.stable_guid("subscription", f"{tenant.tenant_id}:{sku.sku_id}")],
        "prepaidUnits": {"enabled": sku.enabled, "suspended": 0, "warning": 0, "lockedOut": 0},
        "servicePlans": [{"servicePlanId": pid, "servicePlanName": name, "provisioningStatus": "Success",
                          "appliesTo": "User"} for pid, name in sku.plans],
    }


async def list_subscribed_skus(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req)
    return _collection(req, "subscribedSkus", [subscribed_sku(tenant, p) for p in tenant.skus])


def gdap_relationship(tenant: Tenant, now: float) -> dict[str, Any]:
    start = iso(tenant.created_at)
    ends = now + _EXPIRING_DAYS * 86400 if tenant.gdap == "expiring" else \
        tenant.created_at + _DURATION_DAYS * 86400
    end = iso(ends)
    return {
        "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
        "id": catalog.stable_guid("gdap", tenant.tenant_id) + "-" + catalog.stable_guid("gdap2", tenant.tenant_id),
        "displayName": f"CSP {tenant.company_name}"[:50], "duration": f"P{_DURATION_DAYS}D", "status": tenant.gdap,
        "autoExtendDuration": "P180D", "createdDateTime": start, "lastModifiedDateTime": start,
        "activatedDateTime": start, "endDateTime": end,
        "customer": {"tenantId": tenant.tenant_id, "displayName": tenant.company_name},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": role} for role in tenant.gdap_roles]},
    }


async def list_gdap(em: Emulator, req: Request) -> Response:
    guard.graph_partner(em, req)
    where = odata.parse_filter(req)
    now = em.clock.time()
    items = [gdap_relationship(t, now) for t in em.world.tenants.values() if t.gdap != "none"]
    if where is not None:
        items = [item for item in items if where(item)]
    return _collection(req, "tenantRelationships/delegatedAdminRelationships", items)


ROUTES = [
    route("GET", "/v1.0/domains", list_domains, "graph"),
    route("GET", "/v1.0/subscribedSkus", list_subscribed_skus, "graph"),
    route("GET", "/v1.0/tenantRelationships/delegatedAdminRelationships", list_gdap, "graph"),
]
