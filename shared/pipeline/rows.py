"""The two rows every step writes, written past the ORM's flush: the request and the step.

A step's outcome is a handful of columns on its request row and its step row. Through the ORM that
was a SELECT of the step row, then a flush (unit-of-work set-up, dependency sort, history per
attribute) of both at commit: about a fifth of a worker's CPU per user, more than the database spent
on the statements. Here the step row is never loaded (the claim's UPDATE returns its attempt number)
and both are written with one plain UPDATE each, compiled once per set of columns (shared.db.raw).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, cast

from sqlalchemy import Executable, Table, bindparam, func, inspect, update
from sqlalchemy.orm import Session

from shared.db import raw
from shared.db.models import ProvisioningRequest, RequestStep
from shared.pipeline.claim import LeaseLost
from shared.requests import kinds

_requests = cast(Table, ProvisioningRequest.__table__)
_steps = cast(Table, RequestStep.__table__)
_REQUEST_COLUMNS = frozenset(_requests.c.keys()) - {"id"}
_STEP_COLUMNS = frozenset(_steps.c.keys()) - {"id", "request_id", "name", "position", "duration_ms"}


@dataclass(slots=True)
class StepRow:
    """The step a claim started: its name, this attempt's number, and what the outcome changes."""

    request_id: str
    name: str
    attempts: int  # counting this attempt (the claim's UPDATE counted it)
    changes: dict[str, Any] = field(default_factory=dict)
    elapsed_ms: int = 0  # added to the row's duration: active time, summed over attempts

    def set(self, **values: Any) -> None:
        unknown = set(values) - _STEP_COLUMNS
        if unknown:
            raise AttributeError(f"request_steps has no writable column {sorted(unknown)}")
        self.changes.update(values)

    def add_duration(self, elapsed_ms: int) -> None:
        self.elapsed_ms += elapsed_ms


def write_step(session: Session, step: StepRow) -> None:
    if not step.changes and not step.elapsed_ms:
        return
    params = {f"w_{k}": v for k, v in step.changes.items()}
    params.update(w_request_id=step.request_id, w_name=step.name, w_elapsed=step.elapsed_ms)
    raw.execute(session.connection(), _step_stmt(tuple(sorted(step.changes))), params)
    step.changes, step.elapsed_ms = {}, 0


def write_request(session: Session, req: ProvisioningRequest, *, now: datetime, lease: str | None = None) -> bool:
    """Write what changed on the request since it was loaded or last written, and mark it so, as a
    flush would (`updated_at` as its onupdate would set it); True when it wrote. Anything else on the
    request (a changed relationship) is left to the ORM's flush at commit.

    With `lease`, the UPDATE is the lease check too: it writes only while the row runs under that lease
    token (under the row lock the UPDATE takes, as the check's SELECT … FOR UPDATE did), and raises
    LeaseLost, having written nothing, when it does not."""
    state = inspect(req)
    if not state.modified:
        return False
    if "updated_at" not in state.committed_state:
        req.updated_at = now
    keys = tuple(sorted(state.committed_state))
    if not _REQUEST_COLUMNS.issuperset(keys):
        return False
    values = state.dict
    params = {f"w_{k}": values[k] for k in keys}
    params["w_id"] = req.id
    if lease is not None:
        params["w_lease"] = lease
    written = raw.execute(session.connection(), _request_stmt(keys, lease is not None), params)
    if lease is not None and written.rowcount != 1:
        raise LeaseLost(req.id)
    # What the flush does after its UPDATE (SQLAlchemy's InstanceState._commit_all): the values are
    # now the row's, the object is clean, and the session no longer counts it as modified.
    state._commit_all(values, session.identity_map)
    return True


@cache
def _request_stmt(keys: tuple[str, ...], leased: bool) -> Executable:
    c = _requests.c
    stmt = update(_requests).where(c.id == bindparam("w_id"))
    if leased:  # the conditions of claim.lease_is_ours, on the row as it is before this UPDATE
        stmt = stmt.where(c.lease_owner == bindparam("w_lease"), c.state == kinds.RUNNING)
    return stmt.values({k: bindparam(f"w_{k}", type_=c[k].type) for k in keys})


@cache
def _step_stmt(keys: tuple[str, ...]) -> Executable:
    c = _steps.c
    values: dict[str, Any] = {k: bindparam(f"w_{k}", type_=c[k].type) for k in keys}
    values["duration_ms"] = func.coalesce(c.duration_ms, 0) + bindparam("w_elapsed", type_=c.duration_ms.type)
    return (update(_steps).where(c.request_id == bindparam("w_request_id"), c.name == bindparam("w_name"))
            .values(values))
