"""Recording a step's outcome on its request and step rows, and the verdict it gives the step's task.

    Done     -> the next step (the chain continues; after a short pause the next link waits for it,
                after a long one the request waits on a durable timer), or the request succeeds
    Wait     -> a short wait is a retry of the task with a countdown; a long one a durable timer
    Retry    -> the same, for errors (counted against the step's budget) and throttling (not counted)
    Blocked  -> stops until a person (or beat, once the cause is gone) resumes it
    Failed   -> final: seats released, the failure notified
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest
from shared.pipeline import finish
from shared.pipeline.outcomes import Blocked, Done, Failed, Retry, Verdict, Wait
from shared.pipeline.rows import StepRow
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.settings import Settings

Outcome = Done | Wait | Blocked | Failed | Retry


def record(session: Session, req: ProvisioningRequest, step: StepRow, outcome: Outcome, *, now: datetime,
           elapsed_ms: int, settings: Settings) -> tuple[Verdict, list[RequestRef]]:
    """Change the request (ORM, flushed with the step's own writes) and the step row (`step.changes`) for
    `outcome`; the verdict, and the requests to publish once committed (onboarding children)."""
    step.add_duration(elapsed_ms)  # active time, summed over attempts
    req.lease_until = req.lease_owner = None
    req.updated_at = now
    if isinstance(outcome, Done):
        return done(session, req, step, outcome, now=now, settings=settings)
    if isinstance(outcome, Wait):
        step.set(state=kinds.STEP_WAITING, error_code=None, error_message=outcome.reason)
        req.deliveries = req.retries = 0
        return _later(req, outcome.until, now=now, settings=settings, reason="waiting"), []
    if isinstance(outcome, Blocked):
        step.set(state=kinds.STEP_WAITING, error_code=outcome.reason, error_message=outcome.message)
        req.state = kinds.BLOCKED
        req.blocked_reason = req.error_code = outcome.reason
        req.error_message = outcome.message
        req.next_attempt_at = None
        req.deliveries = req.retries = 0
        finish.on_blocked(session, req)  # a person must act: they are told what to do
        return Verdict("halt", reason=f"blocked: {outcome.reason}"), []
    if isinstance(outcome, Failed):
        finish.fail_request(session, req, outcome.code, outcome.message, now=now)
        return Verdict("halt", reason=f"failed: {outcome.code}"), []
    return retry(session, req, step, outcome, now=now, settings=settings), []


def done(session: Session, req: ProvisioningRequest, step: StepRow, outcome: Done, *, now: datetime,
         settings: Settings) -> tuple[Verdict, list[RequestRef]]:
    step.set(state=kinds.STEP_SKIPPED if outcome.skipped else kinds.STEP_SUCCEEDED, finished_at=now,
             error_code=None, error_message=outcome.note)
    req.deliveries = req.retries = 0
    req.error_code = req.error_message = req.blocked_reason = None
    following = next_step(req, step.name)
    if following is None:
        req.state = kinds.SUCCEEDED
        req.current_step = None
        req.finished_at = now
        req.next_attempt_at = None
        return Verdict("continue", reason="succeeded"), finish.on_succeeded(session, req, now=now)
    req.current_step = following
    if outcome.not_before is not None and outcome.not_before > now:
        verdict = _later(req, outcome.not_before, now=now, settings=settings, reason=f"{following} waits")
        if verdict.action == "retry":  # short: the next link comes at once and waits for not_before
            return Verdict("continue", reason=f"{following} after {verdict.countdown:.0f}s"), []
        return verdict, []
    req.state = kinds.RUNNING
    # The next link should claim soon; if its message was lost, the reconciler re-drives after this.
    req.next_attempt_at = now + timedelta(seconds=settings.redrive_after_s)
    return Verdict("continue", reason="done"), []


def retry(session: Session, req: ProvisioningRequest, step: StepRow, outcome: Retry, *, now: datetime,
          settings: Settings) -> Verdict:
    """Try the step again after `outcome.delay`; errors spend the step's budget, waiting does not."""
    if outcome.counted:
        req.retries = (req.retries or 0) + 1
        if req.retries > settings.max_step_retries:
            finish.fail_request(session, req, outcome.code,
                                f"gave up after {req.retries - 1} retries: {outcome.message}", now=now)
            return Verdict("halt", reason=f"failed: {outcome.code}")
    req.deliveries = 0
    step.set(state=kinds.STEP_PENDING, error_code=outcome.code, error_message=outcome.message)
    return _later(req, now + timedelta(seconds=outcome.delay), now=now, settings=settings, reason=outcome.code)


def _later(req: ProvisioningRequest, until: datetime, *, now: datetime, settings: Settings,
           reason: str) -> Verdict:
    """Run the current step at `until`: by a countdown when it is short enough for the broker (Redis
    redelivers an unacked message after its visibility timeout, so a long countdown would run twice),
    else as a durable timer the reconciler wakes. Either way the request says when it is next due."""
    delay = max(0.0, (until - now).total_seconds())
    if delay <= settings.max_countdown_s:
        req.state = kinds.RUNNING
        req.not_before = until
        # The countdown's message should claim at `until`; if it was lost, the reconciler re-drives.
        req.next_attempt_at = until + timedelta(seconds=settings.redrive_after_s)
        return Verdict("retry", reason=reason, countdown=delay)
    req.state = kinds.WAITING
    req.not_before = None
    req.next_attempt_at = until
    return Verdict("halt", reason=f"{reason} until {until.isoformat(timespec='seconds')}")


def next_step(req: ProvisioningRequest, after: str) -> str | None:
    names = kinds.steps_of(req.kind)
    i = names.index(after)
    return names[i + 1] if i + 1 < len(names) else None
