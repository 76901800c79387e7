"""The chains: one `run_step` signature per remaining step of a request, published in bulk."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from celery import Signature, chain

from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.settings import Settings, get_settings
from worker import redis_publish
from worker.app import get_app

log = logging.getLogger(__name__)

RUN_STEP = "worker.tasks.requests.run_step"
RUN_SYNC = "worker.tasks.sync.run_sync"
# Mailbox probes are many and short: kept off the provisioning queue so they never wait behind it.
POLLING_STEPS = frozenset({"wait_mailbox"})
STEP_QUEUES = ("provisioning", "polling", "sync")  # every queue queue_for() answers


def queue_for(kind: str, step: str) -> str:
    if kind == kinds.CUSTOMER_SYNC:
        return "sync"
    return "polling" if step in POLLING_STEPS else "provisioning"


def time_limits(settings: Settings) -> tuple[float, float]:
    """(soft, hard): a step must end before its lease does, or a second delivery could run beside it."""
    hard = max(10.0, settings.lease_seconds - 5.0)
    return hard * 0.85, hard


def chain_for(ref: RequestRef, settings: Settings) -> Signature:
    steps = kinds.steps_of(ref.kind)
    if ref.from_step not in steps:
        raise ValueError(f"{ref.from_step!r} is not a step of {ref.kind}")
    soft, hard = time_limits(settings)
    app = get_app()
    return chain(*(app.signature(RUN_STEP, args=(ref.id, name), immutable=True, queue=queue_for(ref.kind, name),
                                 soft_time_limit=soft, time_limit=hard)
                   for name in steps[steps.index(ref.from_step):]))


def publish(refs: Sequence[RequestRef]) -> None:
    """Send one chain per request: on Redis in one pipeline (worker.redis_publish), on any other broker
    through Celery over one producer connection (1,000 refs: one connection, not 1,000)."""
    if not refs:
        return
    fast = _fast_path()
    if fast is not None:
        fast.publish(refs)
        return
    settings = get_settings()
    with get_app().producer_or_acquire() as producer:
        for ref in refs:
            chain_for(ref, settings).apply_async(producer=producer)


def _fast_path() -> redis_publish.RedisChainPublisher | None:
    """The process's Redis publisher when the broker is plain Redis, else None (Celery's own path)."""
    app = get_app()
    if not redis_publish.supported(app.conf.broker_url, app.conf.broker_transport_options or {}):
        return None
    return redis_publish.publisher_for(app, RUN_STEP, queue_for, time_limits(get_settings()))


def send_next(request: Any) -> None:
    """From inside a task that succeeded: send the chain's next link now, on Redis through the fast
    path, and take it off the request so Celery does not send it again. Elsewhere Celery sends it
    when the task returns, as always."""
    chain = request.chain
    fast = _fast_path() if chain else None
    if fast is None:
        return
    try:
        fast.publish_next(chain, parent_id=request.id, root_id=request.root_id or request.id)
    except Exception:  # left on the request: Celery sends it, with its own connection retries
        log.warning("sending the next link directly failed; Celery sends it", exc_info=True)
        return
    request.chain = None


def queue_after_run_on(queue: str | None, step: str) -> str | None:
    """The queue for a retry of `step`, run on by a message that came from `queue`."""
    if queue == "sync" or queue not in STEP_QUEUES:
        return queue
    return "polling" if step in POLLING_STEPS else "provisioning"


def drop_links(request: Any, steps: Sequence[str]) -> None:
    """Take the links of `steps` (run on by this task, in order) off the front of the running task's chain.

    Celery keeps the rest of a chain reversed: the next link is the last item."""
    chain = request.chain
    for step in steps:
        if not chain or list(chain[-1].get("args") or [])[1:2] != [step]:
            log.warning("the chain does not continue with %s; its next link is left as it is", step)
            return
        chain.pop()


def oldest_waiting(queues: Sequence[str]) -> dict[str, str | None]:
    """{queue: request id of its oldest waiting run_step message, None if empty, "?" unknown}; all
    unknown on a broker other than plain Redis or when Redis cannot be read (the reconciler then
    re-drives as it would without a watermark)."""
    fast = _fast_path()
    if fast is None:
        return dict.fromkeys(queues, "?")
    try:
        return fast.oldest_waiting(queues)
    except Exception:  # a broker that cannot be read: no watermark, every due request is re-driven
        log.warning("could not read the queues for the reconciler's watermark", exc_info=True)
        return dict.fromkeys(queues, "?")


def publish_syncs(customer_ids: Sequence[str]) -> None:
    """One scheduled-sync task per customer on the sync queue, over one producer connection."""
    if not customer_ids:
        return
    app = get_app()
    with app.producer_or_acquire() as producer:
        for customer_id in customer_ids:
            app.signature(RUN_SYNC, args=(customer_id,), queue="sync").apply_async(producer=producer)
