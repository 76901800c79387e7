"""Sync run rows (what the API shows of each sync) and the result a run hands back to its caller."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shared.db.models import SyncRun
from shared.microsoft.errors import MicrosoftError, scrub

RUNNING, SUCCEEDED, FAILED, SKIPPED = "running", "succeeded", "failed", "skipped"
FINISHED = frozenset({SUCCEEDED, FAILED, SKIPPED})
BUSY = "another sync of this customer is running"


@dataclass(frozen=True)
class SyncRunResult:
    """What one call of run_sync did; `state` is succeeded, failed or skipped (another run held the claim)."""

    customer_id: str
    run_id: str | None
    state: str
    full: bool = False
    created: int = 0
    updated: int = 0
    removed: int = 0
    ignored: int = 0
    error: str | None = None

    @property
    def ran(self) -> bool:
        return self.state != SKIPPED


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    removed: int = 0
    ignored: int = 0

    def add(self, other: Counts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.removed += other.removed
        self.ignored += other.ignored


def result_of(run: SyncRun, ignored: int = 0) -> SyncRunResult:
    return SyncRunResult(run.customer_id, run.id, run.state, run.full, run.created or 0, run.updated or 0,
                         run.removed or 0, ignored, run.error)


def start(session: Session, customer_id: str, *, run_id: str | None, trigger: str, full: bool,
          now: datetime) -> SyncRun:
    """The run row, created (or a pre-created queued one taken) in the claiming transaction."""
    run = session.get(SyncRun, run_id) if run_id else None
    if run is None:
        run = SyncRun(customer_id=customer_id, trigger=trigger)
        if run_id:
            run.id = run_id
        session.add(run)
    run.state, run.full, run.started_at, run.error = RUNNING, full, now, None
    session.flush()
    return run


def abandon_stale(session: Session, customer_id: str, now: datetime, keep: str | None) -> None:
    """Runs left `running` by a process that died: we hold the claim now, so they never finish."""
    table = cast(Table, SyncRun.__table__)
    stmt = update(table).where(table.c.customer_id == customer_id, table.c.state == RUNNING)
    if keep:
        stmt = stmt.where(table.c.id != keep)
    session.execute(stmt.values(state=FAILED, finished_at=now,
                                error="abandoned: the process running it stopped before finishing"))


def mark_skipped(session: Session, run_id: str, now: datetime) -> None:
    """A pre-created run row whose sync found another one running."""
    run = session.get(SyncRun, run_id)
    if run is not None and run.state not in FINISHED:
        run.state, run.finished_at, run.error = SKIPPED, now, BUSY


def finish(run: SyncRun, counts: Counts, *, full: bool, now: datetime) -> None:
    run.state, run.full, run.finished_at = SUCCEEDED, full, now
    run.created, run.updated, run.removed = counts.created, counts.updated, counts.removed


def fail(session: Session, run_id: str, error: str, counts: Counts, now: datetime) -> SyncRun | None:
    run = session.get(SyncRun, run_id)
    if run is not None:
        run.state, run.finished_at, run.error = FAILED, now, error
        run.created, run.updated, run.removed = counts.created, counts.updated, counts.removed
    return run


def describe(exc: BaseException) -> str:
    """A reason fit for the run row and the API: no token, no SQL parameters, bounded length."""
    if isinstance(exc, MicrosoftError):
        return str(exc)  # already scrubbed by shared.microsoft
    if isinstance(exc, SQLAlchemyError):
        # str() would carry the statement and its parameters; the driver's first line is enough.
        orig = getattr(exc, "orig", None)
        text = str(orig).splitlines()[0] if orig is not None and str(orig) else type(exc).__name__
        return scrub(f"database error: {text}")
    message = getattr(exc, "message", None) or str(exc)
    return scrub(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
