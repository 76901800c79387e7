"""Beat tasks: reconcile (re-drive due and stalled requests), resume what a fixed cause unblocked, cleanup."""
from __future__ import annotations

from shared.agreements.resume import resume_signed
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.microsoft.factory import get_microsoft
from shared.pipeline import cleanup as cleanup_rules
from shared.pipeline.reconcile import reconcile as reconcile_requests
from shared.purchases.resume import resume_limits
from shared.requests.dispatch import publish_after_commit
from shared.settings import get_settings
from shared.tenants.resume import resume_blocked_access
from worker.base import provisioner_task


@provisioner_task(soft_time_limit=50.0, time_limit=60.0)
def reconcile() -> None:
    with UnitOfWork() as uow:
        refs = reconcile_requests(uow.session, now=utcnow(), settings=get_settings())
        publish_after_commit(uow, refs)
        uow.commit()


@provisioner_task(soft_time_limit=50.0, time_limit=60.0)
def resume_signed_agreements() -> None:
    resume_signed()  # publishes what it resumed after its own commits


@provisioner_task(soft_time_limit=50.0, time_limit=60.0)
def resume_access() -> None:
    resume_blocked_access(get_microsoft(), settings=get_settings(), now=utcnow())


@provisioner_task(soft_time_limit=50.0, time_limit=60.0)
def resume_purchase_limits() -> None:
    resume_limits()  # publishes what it resumed after its commit


@provisioner_task(soft_time_limit=270.0, time_limit=300.0)
def cleanup() -> None:
    with UnitOfWork() as uow:
        cleanup_rules.run(uow.session, now=utcnow())
        uow.commit()
