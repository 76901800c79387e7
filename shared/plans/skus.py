"""The tenant's SKUs as Graph reports them, kept in TenantSku (seat counts and service plans)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import TenantSku

# Service plans that give a user an Exchange Online mailbox (EXCHANGE_S_FOUNDATION gives none).
MAILBOX_PLANS = {
    "9aaf7827-d63c-4b61-89c3-182f06f82e5c": "EXCHANGE_S_STANDARD",
    "efb87545-963c-4e0d-99df-69c6916d9eb0": "EXCHANGE_S_ENTERPRISE",
    "4a82b400-a79f-41a4-b4e2-e94f5787b113": "EXCHANGE_S_DESKLESS",  # Exchange Online Kiosk
    "1126bef5-da20-4f07-b45e-ad25d2581aa8": "EXCHANGE_S_ESSENTIALS",  # Exchange Online Essentials
}


def by_part_number(skus: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(s["skuPartNumber"]).upper(): s for s in skus}


def store_skus(session: Session, customer_id: str, skus: list[dict[str, Any]], now: datetime) -> int:
    rows = {r.sku_part_number.upper(): r for r in session.scalars(
        select(TenantSku).where(TenantSku.customer_id == customer_id))}
    for sku in skus:
        part = str(sku["skuPartNumber"])
        row = rows.get(part.upper())
        if row is None:
            row = TenantSku(customer_id=customer_id, sku_part_number=part)
            session.add(row)
        row.sku_id = str(sku["skuId"])
        row.total = int((sku.get("prepaidUnits") or {}).get("enabled", 0))
        row.consumed = int(sku.get("consumedUnits", 0))
        row.service_plans = [str(p.get("servicePlanName")) for p in sku.get("servicePlans") or []]
        row.refreshed_at = now
    return len(skus)


def disabled_plan_ids(sku: dict[str, Any], disabled: list[str]) -> list[str]:
    """The user plan names service plans to switch off by name or id; Graph wants ids."""
    wanted = {d.lower() for d in disabled}
    return [str(p["servicePlanId"]) for p in sku.get("servicePlans") or []
            if str(p.get("servicePlanId", "")).lower() in wanted or str(p.get("servicePlanName", "")).lower() in wanted]


def grants_mailbox(sku: dict[str, Any], disabled_ids: list[str]) -> bool:
    off = {d.lower() for d in disabled_ids}
    for plan in sku.get("servicePlans") or []:
        pid = str(plan.get("servicePlanId", "")).lower()
        if (pid in MAILBOX_PLANS or plan.get("servicePlanName") in MAILBOX_PLANS.values()) and pid not in off:
            return True
    return False
