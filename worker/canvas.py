"""The chains: one `steps.<name>` task per remaining step of a request, published through Celery."""
from __future__ import annotations

from collections.abc import Sequence

from celery import Signature, chain

from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.settings import Settings, get_settings
from worker.app import get_app
from worker.queues import PRIORITY_LEVELS, PROVISIONING, queue_of_step, step_task

RUN_SYNC = "worker.tasks.sync.run_sync"
# A request's later links go first, so started requests finish before new ones begin. Breadth-first (one
# FIFO queue) moved a bulk of users through each step in a wave: nobody finished until everybody had
# passed every step, and Graph's and Exchange's budgets were used one after the other instead of side by
# side (bench/throttling.py: the tenant's Graph rate idled while 200 users queued for Exchange at the end).
# On Redis a queue's priority 0 is consumed first (kombu's levels 0, 3, 6, 9); the SQLAlchemy transport of
# `provisioner dev` ignores priorities (FIFO, as before). Links routed to polling or sync carry none: those
# queues hold one kind of work each.
LINK_PRIORITIES = tuple(reversed(PRIORITY_LEVELS))


def link_priority(steps: Sequence[str], step: str) -> int | None:
    """The broker priority of `step`'s link (Redis: lower runs first), by its place among the kind's steps;
    None outside the provisioning queue."""
    if queue_of_step(step) != PROVISIONING:
        return None
    return LINK_PRIORITIES[min(steps.index(step), len(LINK_PRIORITIES) - 1)]


def time_limits(settings: Settings) -> tuple[float, float]:
    """(soft, hard): a step must end before its lease does, or a second delivery could run beside it."""
    hard = max(10.0, settings.lease_seconds - 5.0)
    return hard * 0.85, hard


def chain_for(ref: RequestRef, settings: Settings) -> Signature:
    """The request's chain from `ref.from_step`: each link takes (request id, dispatch), nothing else."""
    steps = kinds.steps_of(ref.kind)
    if ref.from_step not in steps:
        raise ValueError(f"{ref.from_step!r} is not a step of {ref.kind}")
    soft, hard = time_limits(settings)
    app = get_app()
    return chain(*(app.signature(step_task(name), args=(ref.id, str(ref.dispatch)), immutable=True,
                                 soft_time_limit=soft, time_limit=hard, **_priority(steps, name))
                   for name in steps[steps.index(ref.from_step):]))


def _priority(steps: Sequence[str], step: str) -> dict[str, int]:
    priority = link_priority(steps, step)
    return {} if priority is None else {"priority": priority}


def publish(refs: Sequence[RequestRef]) -> None:
    """Send one chain per request through one producer, batched into as few broker round trips as the
    transport allows (kombu's Producer.batch; Redis pipelines them). Celery still fires its publish
    signals, retries the publish and honours every setting."""
    if not refs:
        return
    settings = get_settings()
    with get_app().producer_or_acquire() as producer, producer.batch():
        for ref in refs:
            chain_for(ref, settings).apply_async(producer=producer)


def publish_syncs(customer_ids: Sequence[str]) -> None:
    """One scheduled-sync task per customer on the sync queue, through one producer."""
    if not customer_ids:
        return
    app = get_app()
    with app.producer_or_acquire() as producer, producer.batch():
        for customer_id in customer_ids:
            app.signature(RUN_SYNC, args=(customer_id,)).apply_async(producer=producer)
