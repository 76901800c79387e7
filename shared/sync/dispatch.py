"""dispatch_due_syncs: which customers' scheduled syncs are due now, each handed out exactly once."""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import SyncPolicy, TenantConnection
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.settings import get_settings
from shared.sync.claim import POLICIES, ensure_policies

# A due policy's next_run_at moves to now + interval in the same statement that picks it (a
# conditional UPDATE … RETURNING, re-checked row by row), so a second beat running at the same
# moment gets the ones the first did not take — none twice. On PostgreSQL the candidate rows are
# also locked with SKIP LOCKED so the second beat does not wait for the first.

CONNECTED = "connected"
DEFAULT_LIMIT = 1000


def dispatch_due_syncs(now: datetime | None = None, *, limit: int = DEFAULT_LIMIT,
                       session_factory: sessionmaker[Session] | None = None) -> list[str]:
    """Customer ids whose sync is due (enabled, tenant connected, next run reached, not running).

    Connected customers that never stored a policy get the default one (enabled, every 60
    minutes), as the API shows it, and are due at once.
    """
    now = now or utcnow()
    stale = now - timedelta(seconds=get_settings().sync_stale_claim_s)
    with UnitOfWork(session_factory) as uow:
        s = uow.session
        _adopt_connected(s, now)
        pick = (select(POLICIES.c.customer_id, POLICIES.c.interval_minutes)
                .join(TenantConnection, TenantConnection.customer_id == POLICIES.c.customer_id)
                .where(POLICIES.c.enabled.is_(True), TenantConnection.state == CONNECTED,
                       or_(POLICIES.c.next_run_at.is_(None), POLICIES.c.next_run_at <= now),
                       or_(POLICIES.c.running_since.is_(None), POLICIES.c.running_since < stale))
                .order_by(POLICIES.c.next_run_at.is_not(None), POLICIES.c.next_run_at)
                .limit(limit))
        if s.get_bind().dialect.name == "postgresql":
            pick = pick.with_for_update(of=POLICIES, skip_locked=True)
        by_interval: dict[int, list[str]] = defaultdict(list)
        for customer_id, interval in s.execute(pick).tuples():
            by_interval[interval].append(customer_id)
        due: list[str] = []
        for interval, ids in by_interval.items():
            taken = s.execute(
                update(POLICIES)
                .where(POLICIES.c.customer_id.in_(ids), POLICIES.c.enabled.is_(True),
                       or_(POLICIES.c.next_run_at.is_(None), POLICIES.c.next_run_at <= now))
                .values(next_run_at=now + timedelta(minutes=interval))
                .returning(POLICIES.c.customer_id))
            due.extend(taken.scalars())
        uow.commit()
        return due


def _adopt_connected(s: Session, now: datetime) -> None:
    missing = s.scalars(
        select(TenantConnection.customer_id)
        .outerjoin(SyncPolicy, SyncPolicy.customer_id == TenantConnection.customer_id)
        .where(TenantConnection.state == CONNECTED, SyncPolicy.customer_id.is_(None))).all()
    ensure_policies(s, list(missing), now)
