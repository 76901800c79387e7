"""Scheduled syncs: the beat's dispatch_due_syncs hands each due customer to run_sync on the sync queue."""
from __future__ import annotations

from worker.base import provisioner_task

# A full sync of a large tenant takes seconds to minutes; well inside Redis's visibility timeout.
SYNC_SOFT_LIMIT_S, SYNC_HARD_LIMIT_S = 1500.0, 1800.0


@provisioner_task(soft_time_limit=50.0, time_limit=60.0)
def dispatch_due_syncs() -> None:
    from shared.sync.dispatch import dispatch_due_syncs as due_customers
    from worker.canvas import publish_syncs

    publish_syncs(due_customers())


@provisioner_task(soft_time_limit=SYNC_SOFT_LIMIT_S, time_limit=SYNC_HARD_LIMIT_S)
def run_sync(customer_id: str) -> None:
    from shared.sync.engine import run_sync as sync_customer

    sync_customer(customer_id, trigger="schedule")  # never raises for Microsoft or data problems
