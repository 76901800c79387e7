"""The live licence view: Microsoft's SKU counts (refreshed when stale) minus seats held by pending requests."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.auth.principal import Principal
from shared.customers import context, live
from shared.db.models import ServiceProvider, TenantSku
from shared.db.types import new_id, utcnow
from shared.db.uow import UnitOfWork
from shared.seats import ledger
from shared.upsert import upsert

# "Live" within this many seconds: a page refreshing the view does not cost a Graph call each time.
MAX_AGE = timedelta(seconds=30)


def licences(uow: UnitOfWork, who: Principal, customer_id: str) -> list[ledger.SkuSeats]:
    with uow:
        s = uow.session
        ctx = context.load(s, who, customer_id)
        tenant_id = ctx.require_connected()
        refreshed = s.scalars(select(TenantSku.refreshed_at).where(TenantSku.customer_id == customer_id)).all()
        if not refreshed or any(r is None or r < utcnow() - MAX_AGE for r in refreshed):
            refresh_skus(s, ctx.service_provider_id, customer_id, tenant_id)
            uow.commit()
        return ledger.seats(s, customer_id)


def refresh_skus(session: Session, provider_id: str, customer_id: str, tenant_id: str) -> None:
    """Replace the customer's TenantSku rows with Graph's subscribedSkus (concurrent refreshes are safe)."""
    provider = session.get(ServiceProvider, provider_id)
    assert provider is not None
    with live.microsoft_call("reading the tenant's licences"):
        skus = live.graph(provider, tenant_id).subscribed_skus()
    now = utcnow()
    rows = [_row(customer_id, sku, now) for sku in skus if sku.get("skuPartNumber")]
    upsert(session, TenantSku, rows, keys=("customer_id", "sku_part_number"),
           update=("sku_id", "total", "consumed", "service_plans", "refreshed_at"))
    session.execute(delete(TenantSku).where(TenantSku.customer_id == customer_id,
                                            TenantSku.sku_part_number.not_in([r["sku_part_number"] for r in rows])))
    session.expire_all()


def _row(customer_id: str, sku: dict[str, Any], now: Any) -> dict[str, Any]:
    prepaid = sku.get("prepaidUnits") or {}
    return {"id": new_id(), "customer_id": customer_id, "sku_id": str(sku.get("skuId") or ""),
            "sku_part_number": str(sku["skuPartNumber"]), "total": int(prepaid.get("enabled") or 0),
            "consumed": int(sku.get("consumedUnits") or 0),
            "service_plans": [str(p.get("servicePlanName")) for p in sku.get("servicePlans") or []
                              if p.get("servicePlanName")],
            "refreshed_at": now}
