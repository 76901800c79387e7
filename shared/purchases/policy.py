"""How many seats the engine may buy for a customer: its own policy, else its reseller's default, else none."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import PurchasePolicy
from shared.db.types import utcnow


@dataclass(frozen=True)
class Policy:
    enabled: bool
    max_units_per_day: int | None
    max_units_per_order: int | None
    source: str  # customer | service_provider | default

    def view(self) -> dict[str, object]:
        return {"enabled": self.enabled, "max_units_per_day": self.max_units_per_day,
                "max_units_per_order": self.max_units_per_order, "source": self.source}


OFF = Policy(False, None, None, "default")


def _of(row: PurchasePolicy, source: str) -> Policy:
    return Policy(row.enabled, row.max_units_per_day, row.max_units_per_order, source)


def effective(session: Session, customer_id: str, service_provider_id: str) -> Policy:
    rows = {r.owner_id: r for r in session.scalars(select(PurchasePolicy).where(
        PurchasePolicy.owner_id.in_([customer_id, service_provider_id])))}
    if customer_id in rows:
        return _of(rows[customer_id], "customer")
    if service_provider_id in rows:
        return _of(rows[service_provider_id], "service_provider")
    return OFF


def provider_default(session: Session, service_provider_id: str) -> Policy:
    row = session.get(PurchasePolicy, service_provider_id)
    return _of(row, "service_provider") if row is not None else OFF


def put(session: Session, *, service_provider_id: str, customer_id: str | None, enabled: bool,
        max_units_per_day: int | None, max_units_per_order: int | None, now: datetime | None = None) -> Policy:
    """Set a customer's policy (customer_id given) or the reseller's default."""
    owner = customer_id or service_provider_id
    row = session.get(PurchasePolicy, owner, with_for_update=True)
    if row is None:
        row = PurchasePolicy(owner_id=owner, service_provider_id=service_provider_id, customer_id=customer_id,
                             created_at=now or utcnow())
        session.add(row)
    row.enabled = enabled
    row.max_units_per_day = max_units_per_day
    row.max_units_per_order = max_units_per_order
    row.updated_at = now or utcnow()
    session.flush()
    return _of(row, "customer" if customer_id else "service_provider")


def allowance(policy: Policy, bought_today: int, wanted: int) -> tuple[int, str]:
    """(units that may be bought now, why fewer than wanted): the policy's switch, daily cap and order size."""
    if not policy.enabled:
        return 0, "the purchase policy is off for this customer"
    units, why = wanted, ""
    if policy.max_units_per_day is not None:
        left = max(0, policy.max_units_per_day - bought_today)
        if left < units:
            units = left
            why = f"the daily cap of {policy.max_units_per_day} unit(s) is reached ({bought_today} bought today)"
    if policy.max_units_per_order is not None and policy.max_units_per_order < units:
        units, why = policy.max_units_per_order, f"max_units_per_order is {policy.max_units_per_order}"
    return units, why
