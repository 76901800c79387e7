"""One Celery task per step (`steps.reserve_seat`, `steps.ensure_user`, …): Flower shows a request's chain.

Each takes (request id, dispatch) and calls the engine; Postgres decides everything else. A link whose
step is done, or whose dispatch was superseded, returns at once and ends its chain.
"""
from __future__ import annotations

from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from shared.observability.logging import log_context
from shared.pipeline import isolation
from shared.pipeline.engine import Engine
from shared.requests import kinds
from shared.settings import get_settings
from worker.base import provisioner_task
from worker.queues import step_task

# Defaults only: every chain link carries limits derived from the lease (worker.canvas.time_limits).
SOFT_LIMIT_S, HARD_LIMIT_S = 240.0, 270.0


def _engine() -> Engine:
    from shared.microsoft.factory import get_microsoft  # the worker's Microsoft clients, built once

    # Suspects (a delivery that never finished) run alone in this process: shared/pipeline/isolation.py.
    return Engine(get_microsoft(), settings=get_settings(), retryable=(SoftTimeLimitExceeded,),
                  isolation=isolation.for_this_process())


def run(task: Any, step: str, request_id: str, dispatch: str) -> str:
    """The body every step task shares: the verdict becomes Celery's next move."""
    with log_context(request_id=request_id, step=step, task_id=task.request.id):
        verdict = _engine().run(request_id, step, int(dispatch))
    if verdict.action == "retry":  # same message, same chain, later (Flower shows the retry)
        raise task.retry(countdown=verdict.countdown, max_retries=None)
    if verdict.action == "halt":
        # Waiting on a durable timer, blocked, failed, or not this copy's to run: the rest of the chain
        # must not be sent (the chain's next links ride in this task's request; Postgres and the
        # reconciler say what happens next).
        task.request.chain = None
    return verdict.reason  # what Flower shows as the result: a code or a state, never data


def _register(step: str) -> Any:
    @provisioner_task(name=step_task(step), soft_time_limit=SOFT_LIMIT_S, time_limit=HARD_LIMIT_S, bind=True,
                      max_retries=None)
    def step_task_body(self: Any, request_id: str, dispatch: str) -> str:
        return run(self, step, request_id, dispatch)

    step_task_body.__doc__ = f"Run the {step} step of a request."
    return step_task_body


TASKS = {step: _register(step) for step in kinds.all_steps()}
