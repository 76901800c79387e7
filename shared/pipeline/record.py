"""Writing a step's outcome onto its request and step rows (inside the caller's transaction)."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, object_session

from shared.db.models import ProvisioningRequest
from shared.pipeline import finish
from shared.pipeline.outcomes import Blocked, Done, Failed, Retry, Wait
from shared.pipeline.rows import StepRow
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.settings import Settings


def _release(req: ProvisioningRequest, now: datetime) -> None:
    req.lease_until = req.lease_owner = None
    req.updated_at = now


def _close_attempt(step: StepRow, now: datetime, elapsed_ms: int) -> None:
    step.add_duration(elapsed_ms)  # active time, summed over attempts


def next_step(req: ProvisioningRequest, after: str) -> str | None:
    names = kinds.steps_of(req.kind)
    i = names.index(after)
    return names[i + 1] if i + 1 < len(names) else None


def done(session: Session, req: ProvisioningRequest, step: StepRow, outcome: Done, *, now: datetime,
         elapsed_ms: int, settings: Settings) -> list[RequestRef]:
    """Advance; on the last step the request succeeds. Returns requests to start (onboarding children)."""
    _close_attempt(step, now, elapsed_ms)
    step.set(state=kinds.STEP_SKIPPED if outcome.skipped else kinds.STEP_SUCCEEDED, finished_at=now,
             error_code=None, error_message=outcome.note)
    _release(req, now)
    req.deliveries = req.retries = 0
    req.error_code = req.error_message = req.blocked_reason = None
    following = next_step(req, step.name)
    if following is None:
        req.state = kinds.SUCCEEDED
        req.current_step = None
        req.finished_at = now
        req.next_attempt_at = None
        return finish.on_succeeded(session, req, now=now)
    req.current_step = following
    if outcome.not_before is not None and outcome.not_before > now:
        req.state = kinds.WAITING  # the reconciler starts the next step when the timer is due
        req.next_attempt_at = outcome.not_before
        return []
    req.state = kinds.RUNNING
    # The next step's message should claim soon; if it was lost, the reconciler re-drives after this.
    req.next_attempt_at = now + timedelta(seconds=settings.redrive_after_s)
    return []


def wait(req: ProvisioningRequest, step: StepRow, outcome: Wait, *, now: datetime, elapsed_ms: int) -> None:
    """A durable timer: nothing holds a worker; the reconciler re-enqueues at `until`."""
    _close_attempt(step, now, elapsed_ms)
    step.set(state=kinds.STEP_WAITING, error_code=None, error_message=outcome.reason)
    _release(req, now)
    req.state = kinds.WAITING
    req.next_attempt_at = outcome.until
    req.deliveries = req.retries = 0


def blocked(req: ProvisioningRequest, step: StepRow, outcome: Blocked, *, now: datetime,
            elapsed_ms: int) -> None:
    _close_attempt(step, now, elapsed_ms)
    step.set(state=kinds.STEP_WAITING, error_code=outcome.reason, error_message=outcome.message)
    _release(req, now)
    req.state = kinds.BLOCKED
    req.blocked_reason = req.error_code = outcome.reason
    req.error_message = outcome.message
    req.next_attempt_at = None
    req.deliveries = req.retries = 0
    session = object_session(req)
    if session is not None:
        finish.on_blocked(session, req)


def failed(session: Session, req: ProvisioningRequest, step: StepRow | None, outcome: Failed, *,
           now: datetime, elapsed_ms: int = 0) -> None:
    """Final: the step and the request say why; seats are released and the failure is notified."""
    if step is not None:
        _close_attempt(step, now, elapsed_ms)
    finish.fail_request(session, req, outcome.code, outcome.message, now=now)


def retry(session: Session, req: ProvisioningRequest, step: StepRow, outcome: Retry, *, now: datetime,
          elapsed_ms: int, settings: Settings) -> float | None:
    """A short retry: the countdown to use, or None when it became a durable timer or a failure."""
    req.retries = (req.retries or 0) + 1
    if req.retries > settings.max_step_retries:
        failed(session, req, step, Failed(outcome.code, f"gave up after {req.retries - 1} retries: "
                                          f"{outcome.message}"), now=now, elapsed_ms=elapsed_ms)
        return None
    if outcome.delay > settings.max_countdown_s:
        # Longer than a safe countdown (Redis would redeliver it early): a durable timer instead.
        retries = req.retries
        wait(req, step, Wait(now + timedelta(seconds=outcome.delay), outcome.message), now=now,
             elapsed_ms=elapsed_ms)
        req.retries = retries
        return None
    _close_attempt(step, now, elapsed_ms)
    step.set(state=kinds.STEP_PENDING, error_code=outcome.code, error_message=outcome.message)
    _release(req, now)
    req.state = kinds.RUNNING
    req.deliveries = 0
    req.next_attempt_at = now + timedelta(seconds=outcome.delay + settings.redrive_after_s)
    return outcome.delay
