"""Running one step of one request: claim it, run it in its own unit of work, record the outcome."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload, sessionmaker

from shared.db.models import ProvisioningRequest
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.microsoft.errors import MicrosoftError
from shared.observability import counters
from shared.observability.logging import log_context
from shared.pipeline import finish, record, registry, rows
from shared.pipeline.claim import (
    Claim,
    LeaseLost,
    adopt,
    claim_next,
    step_row,
    try_claim,
)
from shared.pipeline.context import StepContext, describe_error
from shared.pipeline.errors import classify
from shared.pipeline.isolation import Isolation
from shared.pipeline.outcomes import Blocked, Done, Failed, Retry, Wait
from shared.pipeline.ports import Microsoft
from shared.pipeline.rows import StepRow
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
PR = ProvisioningRequest
_LEAN = (lazyload(PR.steps),)


@dataclass(frozen=True)
class Verdict:
    """What the task does next. `step` is the step the verdict is about, `ran` every step this call ran
    (more than the message's own when the engine ran on): the task drops their links from its chain."""
    action: Literal["continue", "halt", "retry"]
    countdown: float = 0.0
    reason: str = ""
    step: str = ""
    ran: tuple[str, ...] = ()
    # Run-on: the lease on `step` (the next one), taken in the transaction that recorded the last outcome.
    claim: Claim | None = None


def _halt(reason: str) -> Verdict:
    return Verdict("halt", reason=reason)


class _Suspect:
    """The step's previous delivery ended without an outcome: claim it only with the process to itself."""


SUSPECT = _Suspect()


def _fresh(s: Session, request_id: str | None) -> None:
    """Before a claim or a step, in the message's one session: what an earlier step loaded is read again
    when used (other processes write users, seats, tenants meanwhile; a lock taken on a row must see its
    latest version), except the request `request_id`. That row is ours while the lease is: only the
    engine holding the lease writes it (the reconciler and cancel leave leased running requests alone),
    and the lease itself is checked on the row, not on this copy, before an outcome is written."""
    for obj in list(s.identity_map.values()):
        if request_id is None or not isinstance(obj, PR) or obj.id != request_id:
            s.expire(obj)


@dataclass
class _Message:
    """One message's unit of work, and the request it leases: held here because a session's identity
    map keeps an object only while something references it."""
    uow: UnitOfWork
    request: ProvisioningRequest | None = None
    memo: dict[str, Any] = field(default_factory=dict)  # StepContext.memo, shared by the message's steps


class Engine:
    """Runs steps for the worker (or a test) with injected Microsoft clients, settings and sessions.

    1. Claim (own transaction): a conditional UPDATE takes the lease when the message's step is the
       current step and no live lease exists; every claim counts a delivery. A step that already
       succeeded is skipped (the chain continues); anything else that cannot be claimed halts the chain.
       A step delivered more than `max_deliveries` times without an outcome fails as `poison_message`.
    2. Run (own transaction): the step function gets a StepContext; its writes and the outcome commit
       together, only while the lease is still ours (the request row's UPDATE checks it, under the
       row lock it takes).
    3. Verdict for the task: continue the chain, halt it (wait, blocked, failed, not ours), or retry
       with a countdown (throttled, transient, replication lag).
    """

    def __init__(self, microsoft: Microsoft, *, settings: Settings | None = None,
                 session_factory: sessionmaker[Session] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 retryable: tuple[type[BaseException], ...] = (),
                 isolation: Isolation | None = None, run_on: int = 1, run_on_budget_s: float = 0.0) -> None:
        self.microsoft = microsoft
        self.settings = settings or get_settings()
        self._factory = session_factory
        self._clock = clock
        # Exceptions from the host (e.g. Celery's soft time limit) that mean "try again soon".
        self._retryable = retryable
        self._isolation = isolation or Isolation()
        # Steps one call may run (see Settings.run_on_steps); 1 for a caller that steps by hand.
        self._run_on = run_on
        self._run_on_budget_s = run_on_budget_s

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._factory)

    def run(self, request_id: str, step_name: str) -> Verdict:
        """Run the message's step and, while each one continues at once, the steps after it (run on).

        A step that succeeds and may run on records its outcome and takes the lease on the next step in
        one transaction (the claim a message would have made: a delivery counted, an attempt started),
        so a crash between two steps leaves what one message per step would: the next step's lease
        expires and the reconciler re-drives it.

        One session serves the whole message, a transaction per claim and per step as before: a step
        run on finds the request it leases already loaded instead of reading it again (see _fresh)."""
        deadline = time.monotonic() + self._run_on_budget_s
        ran: list[str] = []
        claim: Claim | None = None
        with self._uow() as uow:
            msg = _Message(uow)
            while True:
                run_on = len(ran) + 1 < self._run_on and time.monotonic() < deadline
                with log_context(step=step_name):
                    try:
                        verdict = self._run_one(msg, request_id, step_name, claim, run_on=run_on)
                    finally:
                        uow.rollback()  # whatever a path left open (a no-op after a commit)
                ran.append(step_name)
                if verdict.action != "continue" or verdict.claim is None:
                    return replace(verdict, step=step_name, ran=tuple(ran), claim=None)
                step_name, claim = verdict.step, verdict.claim

    def _run_one(self, msg: _Message, request_id: str, step_name: str, claim: Claim | None, *,
                 run_on: bool) -> Verdict:
        if claim is not None:  # taken when the previous step's outcome was recorded
            with self._isolation.shared():
                return self._run(msg, request_id, step_name, claim, run_on=run_on)
        with self._isolation.shared():
            claimed = self._claim(msg, request_id, step_name, suspect_ok=not self._isolation.isolates)
            if claimed is not SUSPECT:
                return self._run_claimed(msg, request_id, step_name, claimed, run_on=run_on)
        # The last delivery of this step ended without an outcome (its process died?): run it alone.
        with self._isolation.exclusive():
            log.warning("request %s step %s: its last delivery never finished; running it alone", request_id,
                        step_name)
            # Alone, and not on: the steps after a suspect go back to messages.
            return self._run_claimed(msg, request_id, step_name,
                                     self._claim(msg, request_id, step_name, suspect_ok=True), run_on=False)

    def _run_claimed(self, msg: _Message, request_id: str, step_name: str,
                     claimed: Claim | Verdict | _Suspect, *, run_on: bool) -> Verdict:
        if isinstance(claimed, Verdict):
            return claimed
        assert isinstance(claimed, Claim)
        return self._run(msg, request_id, step_name, claimed, run_on=run_on)

    # -- 1. claim ---------------------------------------------------------------------------------
    def _claim(self, msg: _Message, request_id: str, step_name: str, *,
               suspect_ok: bool) -> Claim | Verdict | _Suspect:
        now = self._clock()
        uow = msg.uow
        s = uow.session
        _fresh(s, None)  # the claim's UPDATE writes the request row itself
        claim = try_claim(s, request_id, step_name, now=now, lease_seconds=self.settings.lease_seconds,
                          max_deliveries=self.settings.max_deliveries)
        if claim is None:
            return self._why_not(s, request_id, step_name)
        # Claimed, not committed. A claim that counts a second delivery found the step claimed before
        # without an outcome (every outcome resets the count): its process may have died of it.
        if claim.deliveries > 1 and not suspect_ok:
            uow.rollback()  # nothing claimed, no transaction left open while this waits for the process
            return SUSPECT  # the caller takes the process for itself and asks again
        if claim.parent_id is not None:
            gate = self._parent_gate(uow, request_id, claim.parent_id, now)
            if gate is not None:
                return gate
        if claim.deliveries > self.settings.max_deliveries:  # (the claim did not start the step)
            req = s.get(PR, request_id)
            assert req is not None
            finish.fail_request(s, req, "poison_message",
                                f"delivered {claim.deliveries - 1} times without finishing", now=now)
            uow.commit()
            log.error("request %s step %s failed as a poison message", request_id, step_name)
            return _halt("poison")
        uow.commit()
        msg.request = adopt(s, claim) or msg.request  # the step finds it loaded: no SELECT of what we wrote
        return claim

    def _parent_gate(self, uow: UnitOfWork, request_id: str, parent_id: str, now: datetime) -> Verdict | None:
        """Children of an onboarding request start once it succeeded, and fail when it failed: None keeps
        the claim, a verdict has undone it (and committed the child's failure)."""
        s = uow.session
        parent_state = s.scalar(select(PR.state).where(PR.id == parent_id))
        if parent_state == kinds.SUCCEEDED:
            return None
        uow.rollback()  # the claim goes: a gated child is not delivered
        req = s.get(PR, request_id)
        verdict = _halt("parent not finished")
        if req is not None and parent_state in (kinds.FAILED, kinds.CANCELLED, None) \
                and req.state in kinds.ACTIVE_STATES:
            finish.fail_request(s, req, "parent_failed", f"onboarding request {parent_id} did not succeed", now=now)
            verdict = _halt("parent failed")
        uow.commit()
        return verdict

    def _why_not(self, s: Session, request_id: str, step_name: str) -> Verdict:
        s.expire_all()
        req = s.get(PR, request_id)
        step = step_row(s, request_id, step_name)
        if req is None or step is None:
            return _halt("no such request or step")
        if req.state in kinds.ACTIVE_STATES and step.state in (kinds.STEP_SUCCEEDED, kinds.STEP_SKIPPED):
            # A stale copy (a re-drive of a message that was only slow, not lost): stop here. If this
            # copy was the chain's only way on (its worker died between commit and sending the next
            # message), the reconciler re-drives from the current step; continuing would walk a
            # second copy of the whole chain and multiply every later message.
            return _halt("step already done")
        return _halt(f"request {req.state} at {req.current_step}, lease until {req.lease_until}")

    # -- 2. run -----------------------------------------------------------------------------------
    def _run(self, msg: _Message, request_id: str, step_name: str, claim: Claim, *,
             run_on: bool = False) -> Verdict:
        now = self._clock()
        uow = msg.uow
        s = uow.session
        _fresh(s, request_id)
        # The request without its other steps (lazily loaded if an outcome needs them): building six
        # step objects for every step run cost a tenth of a worker's CPU. Run on, it is still loaded.
        req = msg.request = s.get(PR, request_id, options=_LEAN)
        assert req is not None
        step = StepRow(request_id, step_name, claim.attempts)
        ctx = StepContext(s, req, step, self.settings, self.microsoft, now,
                          checkpointer=lambda _values: self._checkpoint(uow, req, claim.token),
                          memo=msg.memo)
        started = time.perf_counter()
        microsoft_error: dict[str, Any] | None = None
        outcome: Done | Wait | Blocked | Failed | Retry
        try:
            outcome = registry.step_function(step_name)(ctx)
        except LeaseLost:
            uow.rollback()
            return _halt("lease lost")
        except Exception as exc:
            outcome = classify(exc, step_name, retries=req.retries or 0, settings=self.settings,
                               retryable=self._retryable)
            if isinstance(exc, MicrosoftError):
                microsoft_error = describe_error(exc)
            if isinstance(outcome, Retry):
                counters.retried(step_name)
            if isinstance(outcome, Failed) and outcome.code == "internal_error":
                log.exception("step %s of request %s raised", step_name, request_id)
            uow.rollback()  # the step's partial writes go; only the outcome is recorded
            step.changes.clear()
        elapsed_ms = int((time.perf_counter() - started) * 1000)
        if microsoft_error is not None:
            step.set(microsoft_error=microsoft_error)
        # No autoflush while the outcome is recorded: a query there (the service state's UPDATE, say)
        # would flush the request's new state through the ORM, past the lease check below.
        with s.no_autoflush:
            verdict = self._record(uow, req, step, outcome, elapsed_ms, run_on=run_on)
        start = verdict.step if verdict.claim is not None else None  # run on: the next step starts too
        try:
            rows.write_dirty(s, now=now)  # the step's own changes to rows it loaded, past the flush
            attempts = rows.write_outcome(s, req, step, now=self._clock(), lease=claim.token, start=start)
        except LeaseLost:
            uow.rollback()  # the step's writes and the outcome's go together
            log.warning("request %s step %s: lease lost, outcome dropped", request_id, step_name)
            return _halt("lease lost")
        uow.commit()
        if verdict.claim is not None:
            return replace(verdict, claim=replace(verdict.claim, attempts=attempts))
        return verdict

    def _checkpoint(self, uow: UnitOfWork, req: ProvisioningRequest, token: str) -> None:
        rows.write_request(uow.session, req, now=self._clock(), lease=token)  # raises LeaseLost
        uow.commit()

    def _record(self, uow: UnitOfWork, req: ProvisioningRequest, step: StepRow,
                outcome: Done | Wait | Blocked | Failed | Retry, elapsed_ms: int, *, run_on: bool = False) -> Verdict:
        s, now = uow.session, self._clock()
        if isinstance(outcome, Done):
            publish_after_commit(uow, record.done(s, req, step, outcome, now=now, elapsed_ms=elapsed_ms,
                                                  settings=self.settings))
            if req.state == kinds.WAITING:
                return _halt("next step waits")
            following = req.current_step or ""  # "" after the last step
            if run_on and following and req.state == kinds.RUNNING:
                return Verdict("continue", step=following,
                               claim=claim_next(req, now=now, lease_seconds=self.settings.lease_seconds))
            return Verdict("continue", step=following)
        if isinstance(outcome, Wait):
            record.wait(req, step, outcome, now=now, elapsed_ms=elapsed_ms)
            return _halt("waiting")
        if isinstance(outcome, Blocked):
            record.blocked(req, step, outcome, now=now, elapsed_ms=elapsed_ms)
            return _halt("blocked")
        if isinstance(outcome, Failed):
            record.failed(s, req, step, outcome, now=now, elapsed_ms=elapsed_ms)
            return _halt("failed")
        countdown = record.retry(s, req, step, outcome, now=now, elapsed_ms=elapsed_ms, settings=self.settings)
        return Verdict("retry", countdown=countdown) if countdown is not None else _halt("retry became a timer")
