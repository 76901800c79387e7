"""A customer's sync policy (read, replace) and "sync now", which starts a `customer.sync` request."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import select

from shared import audit
from shared.auth import scope
from shared.auth.principal import Principal
from shared.customers import context
from shared.db.models import ProvisioningRequest, SyncPolicy
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.idempotency import Answer, Idempotency, answer_once
from shared.reading import reading
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.requests.service import create_request, ref

Master = Literal["local", "microsoft"]
# The guide: the sync "will retrieve all users", so unknown users are imported unless a policy says not to.
DEFAULT = {"enabled": True, "interval_minutes": 60, "import_unknown_users": True, "master": "microsoft"}


@dataclass(frozen=True)
class PolicyView:
    customer_id: str
    enabled: bool
    interval_minutes: int
    import_unknown_users: bool
    master: str
    next_run_at: Any = None
    last_run_at: Any = None


def get_policy(uow: UnitOfWork, who: Principal, customer_id: str) -> PolicyView:
    """The stored policy, or the defaults when none was ever set."""
    with reading(uow) as s:
        scope.customer(s, who, customer_id)
        row = s.get(SyncPolicy, customer_id)
        return _view(row) if row else PolicyView(customer_id, **DEFAULT)  # type: ignore[arg-type]


def put_policy(uow: UnitOfWork, who: Principal, customer_id: str, *, enabled: bool, interval_minutes: int,
               import_unknown_users: bool, master: Master) -> PolicyView:
    """Replace the policy; an enabled policy's next run moves to one interval from now."""
    with uow:
        s = uow.session
        scope.customer(s, who, customer_id)
        scope.require_manager(who, "change the sync policy")
        row = s.get(SyncPolicy, customer_id, with_for_update=True)
        if row is None:
            row = SyncPolicy(customer_id=customer_id)
            s.add(row)
        changed = row.interval_minutes != interval_minutes or not row.enabled or row.next_run_at is None
        row.enabled, row.interval_minutes = enabled, interval_minutes
        row.import_unknown_users, row.master = import_unknown_users, master
        if not enabled:
            row.next_run_at = None
        elif changed:
            row.next_run_at = utcnow() + timedelta(minutes=interval_minutes)
        audit.record(s, who.actor, "customer.sync_policy.updated", "customer", customer_id,
                     {"enabled": enabled, "interval_minutes": interval_minutes,
                      "import_unknown_users": import_unknown_users, "master": master})
        s.flush()
        view = _view(row)
        uow.commit()
        return view


def sync_now(uow: UnitOfWork, who: Principal, customer_id: str, *, full: bool, idem: Idempotency | None,
             present: Callable[[ProvisioningRequest], Any]) -> Answer:
    """202 with a new `customer.sync` request, or with the one already queued or running."""

    def work(uow: UnitOfWork) -> ProvisioningRequest:
        s = uow.session
        ctx = context.load(s, who, customer_id)
        scope.require_manager(who, "start a sync")
        ctx.require_connected()
        active = s.scalar(select(ProvisioningRequest).where(
            ProvisioningRequest.customer_id == customer_id, ProvisioningRequest.kind == kinds.CUSTOMER_SYNC,
            ProvisioningRequest.state.in_(list(kinds.ACTIVE_STATES))).limit(1))
        if active is not None:
            return active
        req = create_request(s, kind=kinds.CUSTOMER_SYNC, service_provider_id=ctx.service_provider_id,
                             customer_id=customer_id, params={"full": full, "trigger": "manual"},
                             created_by=who.key_id)
        audit.record(s, who.actor, "customer.sync.requested", "customer", customer_id,
                     {"request_id": req.id, "full": full})
        publish_after_commit(uow, [ref(req)])
        return req

    return answer_once(uow, idem, 202, work, present)


def _view(row: SyncPolicy) -> PolicyView:
    return PolicyView(row.customer_id, row.enabled, row.interval_minutes, row.import_unknown_users, row.master,
                      row.next_run_at, row.last_run_at)
