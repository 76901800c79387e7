"""The tenant's domains and SKUs as a sync reads them; the seat ledger counts on these SKU rows."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from shared.db.models import TenantConnection, TenantSku
from shared.plans.skus import store_skus
from shared.tenants.domains import apply_domains


def refresh_tenant(session: Session, customer_id: str, domains: list[dict[str, Any]],
                   skus: list[dict[str, Any]], now: datetime) -> dict[str, str]:
    """Store what Graph said; returns skuId -> part number for reading users' assigned licences."""
    conn = session.scalar(select(TenantConnection).where(TenantConnection.customer_id == customer_id))
    if conn is not None:
        apply_domains(conn, domains)
    store_skus(session, customer_id, skus, now)
    listed = [str(s["skuPartNumber"]) for s in skus]
    # A SKU the tenant no longer has offers no seats: left as it was, the ledger would count old ones.
    session.execute(update(TenantSku).where(TenantSku.customer_id == customer_id,
                                            TenantSku.sku_part_number.not_in(listed))
                    .values(total=0, consumed=0, refreshed_at=now)
                    .execution_options(synchronize_session=False))
    return {str(s["skuId"]): str(s["skuPartNumber"]) for s in skus}
