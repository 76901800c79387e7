"""run_step: one step of one request (the engine in shared.pipeline does the work)."""
from __future__ import annotations

from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from shared.observability.logging import log_context
from shared.pipeline import isolation
from shared.pipeline.engine import Engine
from shared.settings import get_settings
from worker import canvas
from worker.base import provisioner_task

# Defaults for a message sent without limits; worker.canvas sets them from the lease.
SOFT_LIMIT_S, HARD_LIMIT_S = 240.0, 270.0


def _engine() -> Engine:
    from shared.microsoft.factory import get_microsoft  # the composition root of the worker

    settings = get_settings()
    # Suspects (a delivery that never finished) run alone in this process: see shared/pipeline/isolation.py.
    # Run-on stays well inside the task's soft time limit, which covers every step the message runs.
    budget = min(settings.run_on_budget_s, canvas.time_limits(settings)[0] / 4)
    return Engine(get_microsoft(), retryable=(SoftTimeLimitExceeded,), isolation=isolation.for_this_process(),
                  run_on=settings.run_on_steps, run_on_budget_s=budget)


@provisioner_task(soft_time_limit=SOFT_LIMIT_S, time_limit=HARD_LIMIT_S, bind=True, max_retries=None)
def run_step(self: Any, request_id: str, step_name: str) -> None:
    with log_context(request_id=request_id, step=step_name, task_id=self.request.id):
        verdict = _engine().run(request_id, step_name)
    if len(verdict.ran) > 1:
        canvas.drop_links(self.request, verdict.ran[1:])  # the engine ran them on: their messages would only halt
    if verdict.action == "continue":
        canvas.send_next(self.request)
        return None
    if verdict.action == "retry":
        # Same message, same chain, later; the engine capped the countdown and counts the retries.
        # After a run-on the step to retry is a later one than the message's own.
        if verdict.step == step_name:
            raise self.retry(countdown=verdict.countdown, max_retries=None)
        queue = canvas.queue_after_run_on((self.request.delivery_info or {}).get("routing_key"), verdict.step)
        raise self.retry(args=(request_id, verdict.step), queue=queue, countdown=verdict.countdown, max_retries=None)
    # Waiting, blocked, failed or not ours: the chain stops; Postgres says what happens next. Not by
    # raising Ignore: Celery formats a traceback for it, a twelfth of a worker's CPU in a busy run.
    self.request.chain = None
    return None
