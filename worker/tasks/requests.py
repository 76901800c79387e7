"""run_step: one step of one request (the engine in shared.pipeline does the work)."""
from __future__ import annotations

from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from shared.observability.logging import log_context
from shared.pipeline import isolation
from shared.pipeline.engine import Engine
from worker import canvas
from worker.base import provisioner_task

# Defaults for a message sent without limits; worker.canvas sets them from the lease.
SOFT_LIMIT_S, HARD_LIMIT_S = 240.0, 270.0


def _engine() -> Engine:
    from shared.microsoft.factory import get_microsoft  # the composition root of the worker

    # Suspects (a delivery that never finished) run alone in this process: see shared/pipeline/isolation.py.
    return Engine(get_microsoft(), retryable=(SoftTimeLimitExceeded,), isolation=isolation.for_this_process())


@provisioner_task(soft_time_limit=SOFT_LIMIT_S, time_limit=HARD_LIMIT_S, bind=True, max_retries=None)
def run_step(self: Any, request_id: str, step_name: str) -> None:
    with log_context(request_id=request_id, step=step_name, task_id=self.request.id):
        verdict = _engine().run(request_id, step_name)
    if verdict.action == "continue":
        canvas.send_next(self.request)
        return None
    if verdict.action == "retry":
        # Same message, same chain, later; the engine capped the countdown and counts the retries.
        raise self.retry(countdown=verdict.countdown, max_retries=None)
    # Waiting, blocked, failed or not ours: the chain stops; Postgres says what happens next. Not by
    # raising Ignore: Celery formats a traceback for it, a twelfth of a worker's CPU in a busy run.
    self.request.chain = None
    return None
