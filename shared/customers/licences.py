"""The live licence view: Partner Center's SKU counts (refreshed when stale) minus seats held by pending requests.

Partner Center's `subscribedskus` answers the partner for its customer, so the view works before (or
without) GDAP; Graph stays the source for assigning licences (the pipeline's own reads)."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from shared.auth.principal import Principal
from shared.customers import context, live, live_reads
from shared.db.models import ServiceProvider, TenantSku
from shared.db.types import new_id, utcnow
from shared.db.uow import UnitOfWork
from shared.seats import ledger
from shared.upsert import upsert

# "Live" within this many seconds: a page refreshing the view does not cost a Microsoft call each time.
MAX_AGE = timedelta(seconds=30)


def licences(uow: UnitOfWork, who: Principal, customer_id: str) -> list[ledger.SkuSeats]:
    with uow:
        s = uow.session
        ctx = context.load(s, who, customer_id)
        tenant_id = ctx.require_connected()
        refreshed = s.scalars(select(TenantSku.refreshed_at).where(TenantSku.customer_id == customer_id)).all()
        if not refreshed or any(r is None or r < utcnow() - MAX_AGE for r in refreshed):
            # Bounded per customer like the other live reads; the rows' age above is this read's cache.
            live_reads.read(customer_id, ("licences", tenant_id),
                            lambda: refresh_skus(s, ctx.service_provider_id, customer_id, tenant_id))
            uow.commit()
        return ledger.seats(s, customer_id)


def refresh_skus(session: Session, provider_id: str, customer_id: str, tenant_id: str) -> None:
    """Replace the customer's TenantSku rows with Partner Center's subscribed SKUs (concurrent refreshes are safe)."""
    provider = session.get(ServiceProvider, provider_id)
    assert provider is not None
    with live.microsoft_call("reading the customer's licences"):
        skus = live.partner_center(provider).subscribed_skus(tenant_id)
    now = utcnow()
    rows = [_row(customer_id, sku, now) for sku in skus if (sku.get("productSku") or {}).get("skuPartNumber")]
    upsert(session, TenantSku, rows, keys=("customer_id", "sku_part_number"),
           update=("sku_id", "total", "consumed", "service_plans", "refreshed_at"))
    session.execute(delete(TenantSku).where(TenantSku.customer_id == customer_id,
                                            TenantSku.sku_part_number.not_in([r["sku_part_number"] for r in rows])))
    session.expire_all()


def _row(customer_id: str, sku: dict[str, Any], now: Any) -> dict[str, Any]:
    """One Partner Center SubscribedSku as a TenantSku row.

    `activeUnits` is what Graph calls `prepaidUnits.enabled` (units in warning or suspended cannot be
    handed out), so free seats mean the same whichever API last counted them.
    """
    product = sku["productSku"]
    return {"id": new_id(), "customer_id": customer_id, "sku_id": str(product.get("id") or ""),
            "sku_part_number": str(product["skuPartNumber"]), "total": int(sku.get("activeUnits") or 0),
            "consumed": int(sku.get("consumedUnits") or 0),
            "service_plans": [str(p.get("serviceName")) for p in sku.get("servicePlans") or []
                              if p.get("serviceName")],
            "refreshed_at": now}
