"""One sync per customer at a time: a claim on SyncPolicy.running_since, renewed as the run goes."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shared.db.models import SyncPolicy

# The claim is a conditional UPDATE (free, or held so long ago that its holder must be dead), so it
# works the same on PostgreSQL and SQLite and across processes. The timestamp written is the
# holder's token: renewing or releasing only touches the row while it still holds that value.

POLICIES = cast(Table, SyncPolicy.__table__)


class ClaimLost(Exception):
    """Another process took over this customer's sync (ours looked dead): stop without writing more."""


@dataclass
class Claim:
    customer_id: str
    token: datetime


def ensure_policies(session: Session, customer_ids: list[str], now: datetime) -> None:
    """Give customers without a stored policy the default one (what the API shows for them)."""
    if not customer_ids:
        return
    insert: Any = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    rows = [{"customer_id": c, "enabled": True, "interval_minutes": 60, "import_unknown_users": True,
             "master": "microsoft", "created_at": now, "updated_at": now} for c in customer_ids]
    session.execute(insert(POLICIES).on_conflict_do_nothing(index_elements=["customer_id"]), rows)


def try_claim(session: Session, customer_id: str, now: datetime, stale_after_s: float) -> Claim | None:
    stale = now - timedelta(seconds=stale_after_s)
    result = session.execute(
        update(POLICIES)
        .where(POLICIES.c.customer_id == customer_id,
               or_(POLICIES.c.running_since.is_(None), POLICIES.c.running_since < stale))
        .values(running_since=now))
    return Claim(customer_id, now) if _rowcount(result) == 1 else None


def renew(session: Session, claim: Claim, now: datetime) -> None:
    """Push the claim forward (a heartbeat); ClaimLost when it is no longer ours.

    The caller sets `claim.token = now` once its transaction committed (a rolled-back renewal
    leaves the old token in the row).
    """
    result = session.execute(
        update(POLICIES)
        .where(POLICIES.c.customer_id == claim.customer_id, POLICIES.c.running_since == claim.token)
        .values(running_since=now))
    if _rowcount(result) != 1:
        raise ClaimLost(f"the sync claim of customer {claim.customer_id} was taken over")


def release(session: Session, claim: Claim, **values: Any) -> bool:
    """Free the claim, setting `values` on the policy at the same time; False if it was not ours."""
    result = session.execute(
        update(POLICIES)
        .where(POLICIES.c.customer_id == claim.customer_id, POLICIES.c.running_since == claim.token)
        .values(running_since=None, **values))
    return _rowcount(result) == 1


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
