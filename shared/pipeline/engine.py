"""Running one step of one request for one delivery: claim it, run it, record the outcome."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session, lazyload, sessionmaker

from shared.db.models import ProvisioningRequest
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.microsoft.errors import MicrosoftError
from shared.observability import counters
from shared.observability.logging import log_context
from shared.pipeline import claim, record, registry, rows
from shared.pipeline.context import StepContext, describe_error
from shared.pipeline.errors import classify
from shared.pipeline.isolation import Isolation
from shared.pipeline.outcomes import Failed, Retry, Verdict
from shared.pipeline.ports import Microsoft
from shared.pipeline.rows import LeaseLost, StepRow
from shared.requests.dispatch import publish_after_commit
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)


@cache
def _request_stmt() -> Select[ProvisioningRequest]:
    """The request, without its steps (a selectin load of every step row per link): the engine writes step
    rows by statement, and a rare reader (a failure's notice) loads them when it asks. Built once, so its
    cache key is computed once (a `Session.get` with options computes it per call)."""
    return (select(ProvisioningRequest).where(ProvisioningRequest.id == bindparam("rid"))
            .options(lazyload(ProvisioningRequest.steps)))


class Engine:
    """Runs steps for the worker (or a test) with injected Microsoft clients, settings and sessions.

    1. Claim (own transaction, shared.pipeline.claim): the lease on the request's current step, for the
       message's dispatch only.
    2. Run (own transaction): the step function gets a StepContext; its writes and the outcome commit
       together, and only while the lease is still ours (the request's row is locked and checked first).
    3. The verdict for the task: continue the chain, halt it, or retry the step after a countdown.
    """

    def __init__(self, microsoft: Microsoft, *, settings: Settings | None = None,
                 session_factory: sessionmaker[Session] | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 retryable: tuple[type[BaseException], ...] = (),
                 isolation: Isolation | None = None) -> None:
        self.microsoft = microsoft
        self.settings = settings or get_settings()
        self.session_factory = session_factory
        self._clock = clock
        # Exceptions from the host (e.g. Celery's soft time limit) that mean "try again soon".
        self._retryable = retryable
        self._isolation = isolation or Isolation()

    def run(self, request_id: str, step_name: str, dispatch: int | None = None) -> Verdict:
        """One delivery of `step_name`; `dispatch` is the generation its message carries (None: any)."""
        with log_context(request_id=request_id, step=step_name):
            with self._isolation.shared():
                claimed = self._take(request_id, step_name, dispatch, suspect_ok=not self._isolation.isolates)
                if not isinstance(claimed, claim.Suspect):
                    return self._run(request_id, step_name, claimed)
            # The last delivery of this step ended without an outcome (its process died?): run it alone.
            with self._isolation.exclusive():
                log.warning("request %s step %s: its last delivery never finished; running it alone",
                            request_id, step_name)
                return self._run(request_id, step_name,
                                 self._take(request_id, step_name, dispatch, suspect_ok=True))

    def _take(self, request_id: str, step_name: str, dispatch: int | None, *,
              suspect_ok: bool) -> claim.Claim | Verdict | claim.Suspect:
        with UnitOfWork(self.session_factory) as uow:
            return claim.take(uow.session, request_id, step_name, dispatch, now=self._clock(),
                              settings=self.settings, suspect_ok=suspect_ok)

    def _run(self, request_id: str, step_name: str, claimed: claim.Claim | Verdict | claim.Suspect) -> Verdict:
        if isinstance(claimed, Verdict):
            return claimed
        assert isinstance(claimed, claim.Claim)
        with UnitOfWork(self.session_factory) as uow:
            try:
                return self._attempt(uow, request_id, step_name, claimed)
            except LeaseLost:
                uow.rollback()  # the step's writes and the outcome's go together
                log.warning("request %s step %s: lease lost, outcome dropped", request_id, step_name)
                return claim.halt("lease lost")

    def _attempt(self, uow: UnitOfWork, request_id: str, step_name: str, claimed: claim.Claim) -> Verdict:
        s, now = uow.session, self._clock()
        req = s.execute(_request_stmt(), {"rid": request_id}).scalar_one()
        step = StepRow(request_id, step_name, claimed.attempts)
        ctx = StepContext(s, req, step, self.settings, self.microsoft, now,
                          checkpointer=lambda _values: self._checkpoint(uow, request_id, claimed.token))
        started = time.perf_counter()
        microsoft_error: dict[str, Any] | None = None
        outcome: record.Outcome
        try:
            outcome = registry.step_function(step_name)(ctx)
        except LeaseLost:
            raise
        except Exception as exc:
            outcome = classify(exc, step_name, retries=req.retries or 0, settings=self.settings,
                               retryable=self._retryable)
            if isinstance(exc, MicrosoftError):
                microsoft_error = describe_error(exc)
            if isinstance(outcome, Retry):
                counters.retried(step_name)
            elif isinstance(outcome, Failed) and outcome.code == "internal_error":
                log.exception("step %s of request %s raised", step_name, request_id)
            uow.rollback()  # the step's partial writes go; only the outcome is recorded
            # The rollback expired the request: load it now, or the first read of it after the outcome's
            # changes (a blocked outcome reads nothing before) would autoflush them past the lease check.
            s.refresh(req)
            step.changes.clear()
        if microsoft_error is not None:
            step.set(microsoft_error=microsoft_error)
        if not rows.lease_is_ours(s, request_id, claimed.token):
            raise LeaseLost(request_id)
        verdict, children = record.record(s, req, step, outcome, now=self._clock(), settings=self.settings,
                                          elapsed_ms=int((time.perf_counter() - started) * 1000))
        rows.write_step(s, step)
        publish_after_commit(uow, children)
        uow.commit()
        return verdict

    def _checkpoint(self, uow: UnitOfWork, request_id: str, token: str) -> None:
        """Commit what the step remembered so far, while the lease is ours (before a call whose answer
        may be lost, e.g. a user create)."""
        if not rows.lease_is_ours(uow.session, request_id, token):
            raise LeaseLost(request_id)
        uow.commit()
