"""A stored "not signed" is believed for a minute; older, Partner Center is asked again before refusing.

An MCA accepted in the Partner Center portal must unblock the reseller without anyone reading it
through the API first. The answer is read inside the caller's transaction: "signed" is stored with
its work; "still not signed" is refused, so its transaction (and the stored time) rolls back, and
this process remembers the read instead, so a burst of refusals asks Partner Center once a minute.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.agreements import mca
from shared.db.models import Agreement, ServiceProvider
from shared.db.types import utcnow
from shared.errors import StateConflict

FRESH_FOR = timedelta(minutes=1)
_MAX_REMEMBERED = 10_000

_lock = threading.Lock()
_unsigned_read_at: dict[str, datetime] = {}  # customer id -> when this process last read "not signed"


def require_signed(session: Session, customer_id: str, provider_id: str, tenant_id: str, *,
                   now: datetime | None = None) -> None:
    """409 mca_not_signed unless the MCA is stored as signed or Partner Center says so now."""
    now = now or utcnow()
    row = session.execute(select(Agreement.signed, Agreement.checked_at)
                          .where(Agreement.customer_id == customer_id)).first()
    if row is not None and row.signed:
        return
    if not _fresh(customer_id, row.checked_at if row is not None else None, now):
        provider = session.get(ServiceProvider, provider_id)
        assert provider is not None
        view = mca.read_live(provider, tenant_id)
        if view.signed:
            mca.remember(session, customer_id, view, now)
            return
        with _lock:
            if len(_unsigned_read_at) >= _MAX_REMEMBERED:
                _unsigned_read_at.clear()
            _unsigned_read_at[customer_id] = now
    raise StateConflict(mca.MCA_NOT_SIGNED, "the customer's Microsoft Customer Agreement is not recorded "
                                            "(POST /v1/customers/{id}/agreement)")


def _fresh(customer_id: str, checked_at: datetime | None, now: datetime) -> bool:
    with _lock:
        read_here = _unsigned_read_at.get(customer_id)
    latest = max((t for t in (checked_at, read_here) if t is not None), default=None)
    return latest is not None and latest > now - FRESH_FOR


def forget(customer_id: str | None = None) -> None:
    """Drop this process's memory of "not signed" reads (one customer, or all)."""
    with _lock:
        if customer_id is None:
            _unsigned_read_at.clear()
        else:
            _unsigned_read_at.pop(customer_id, None)
