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

from sqlalchemy import Executable, Table, bindparam, exists, func, inspect, select, update
from sqlalchemy.orm import Session

from shared.db import raw
from shared.db.models import ProvisioningRequest, RequestStep
from shared.pipeline.claim import LeaseLost, lease_is_ours, start_attempt, start_values
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
    LeaseLost, having written nothing, when it does not. With nothing plain to write, the lease is
    checked with that SELECT."""
    plain = _plain(req, now)
    if plain is None:
        if lease is not None and not lease_is_ours(session, req.id, lease):
            raise LeaseLost(req.id)
        return False
    keys, values = plain
    params = _request_params(req, keys, values, lease)
    written = raw.execute(session.connection(), _request_stmt(keys, lease is not None), params)
    if lease is not None and written.rowcount != 1:
        raise LeaseLost(req.id)
    _written(session, req, values)
    return True


def write_outcome(session: Session, req: ProvisioningRequest, step: StepRow, *, now: datetime, lease: str,
                  start: str | None = None) -> int:
    """A step's outcome: the request row, only under `lease` (else LeaseLost, nothing written), the step
    row and, run on, the start of the next step `start`; that step's attempts, counting this one (0
    without `start`). On PostgreSQL one statement (UPDATEs in a WITH): a step run on paid three round
    trips for it, and every user runs six steps."""
    plain = _plain(req, now)
    conn = session.connection()
    if plain is None or conn.dialect.name != "postgresql":  # SQLite (the embedded default): one by one
        write_request(session, req, now=now, lease=lease)
        write_step(session, step)
        return start_attempt(session, req.id, start, now) if start else 0
    keys, values = plain
    params = _request_params(req, keys, values, lease)
    params.update({f"s_{k}": v for k, v in step.changes.items()})
    params.update(s_name=step.name, s_elapsed=step.elapsed_ms)
    if start:
        params.update(n_name=start, n_now=now)
    row = raw.execute(conn, _outcome_stmt(keys, tuple(sorted(step.changes)), bool(start)), params).first()
    if row is None or row[0] != 1:
        raise LeaseLost(req.id)
    _written(session, req, values)
    step.changes, step.elapsed_ms = {}, 0
    return int(row[1] or 0) if start else 0


def write_dirty(session: Session, *, now: datetime) -> None:
    """What a step changed on rows it loaded (a user's Entra id, its licences), written as write_request
    writes the request: one plain UPDATE of the changed columns per row, `updated_at` set as its onupdate
    would, the object clean after. Only when the session has nothing to insert or delete: the flush
    orders those against UPDATEs (a new row a changed column points at comes first); UPDATEs of loaded
    rows alone need no order. Anything else (a changed relationship, a table of its own kind) is left
    to the flush at commit."""
    if session.new or session.deleted:
        return
    for obj in list(session.dirty):
        state = inspect(obj)
        if not state.modified or isinstance(obj, ProvisioningRequest):  # requests: write_request's, leased
            continue
        table = _plain_table(state.mapper)
        if table is None:
            continue
        if "updated_at" in table.c and "updated_at" not in state.committed_state:
            obj.updated_at = now
        keys = tuple(sorted(state.committed_state))
        if not set(keys) <= set(table.c.keys()) - {"id"}:
            continue
        values = state.dict
        params = {f"w_{k}": values[k] for k in keys}
        params["w_id"] = values["id"]
        raw.execute(session.connection(), _dirty_stmt(table, keys), params)
        state._commit_all(values, session.identity_map)


_plain_tables: dict[Any, Table | None] = {}


def _plain_table(mapper: Any) -> Table | None:
    """The mapper's one table, when its attributes are its columns by name with `id` the primary key."""
    if mapper not in _plain_tables:
        table = mapper.local_table
        plain = (len(mapper.tables) == 1 and isinstance(table, Table)
                 and [c.key for c in table.primary_key] == ["id"]
                 and all(mapper.get_property_by_column(c).key == c.key for c in table.c))
        _plain_tables[mapper] = table if plain else None
    return _plain_tables[mapper]


@cache
def _dirty_stmt(table: Table, keys: tuple[str, ...]) -> Executable:
    c = table.c
    return update(table).where(c.id == bindparam("w_id")).values({k: bindparam(f"w_{k}", type_=c[k].type)
                                                                  for k in keys})


def _plain(req: ProvisioningRequest, now: datetime) -> tuple[tuple[str, ...], dict[str, Any]] | None:
    """The request's changed columns and its values, when a plain UPDATE can write them."""
    state = inspect(req)
    if not state.modified:
        return None
    if "updated_at" not in state.committed_state:
        req.updated_at = now
    keys = tuple(sorted(state.committed_state))
    if not _REQUEST_COLUMNS.issuperset(keys):
        return None
    return keys, state.dict


def _request_params(req: ProvisioningRequest, keys: tuple[str, ...], values: dict[str, Any],
                    lease: str | None) -> dict[str, Any]:
    params = {f"w_{k}": values[k] for k in keys}
    params["w_id"] = req.id
    if lease is not None:
        params["w_lease"] = lease
    return params


def _written(session: Session, req: ProvisioningRequest, values: dict[str, Any]) -> None:
    # What the flush does after its UPDATE (SQLAlchemy's InstanceState._commit_all): the values are
    # now the row's, the object is clean, and the session no longer counts it as modified.
    inspect(req)._commit_all(values, session.identity_map)


@cache
def _request_stmt(keys: tuple[str, ...], leased: bool) -> Executable:
    c = _requests.c
    stmt = update(_requests).where(c.id == bindparam("w_id"))
    if leased:  # the conditions of claim.lease_is_ours, on the row as it is before this UPDATE
        stmt = stmt.where(c.lease_owner == bindparam("w_lease"), c.state == kinds.RUNNING)
    return stmt.values({k: bindparam(f"w_{k}", type_=c[k].type) for k in keys})


@cache
def _outcome_stmt(keys: tuple[str, ...], step_keys: tuple[str, ...], start: bool) -> Executable:
    """WITH r AS (UPDATE the request under its lease RETURNING id), s AS (UPDATE its step, if r did),
    n AS (UPDATE the next step's start, if r did, RETURNING attempts) SELECT r's count, n's attempts.
    Every UPDATE in a WITH runs to completion whether read or not, in one snapshot, on other rows."""
    r = cast(Any, _request_stmt(keys, True)).returning(_requests.c.id).cte("r")
    c = _steps.c
    leased = exists(select(r.c.id))
    values: dict[str, Any] = {k: bindparam(f"s_{k}", type_=c[k].type) for k in step_keys}
    values["duration_ms"] = func.coalesce(c.duration_ms, 0) + bindparam("s_elapsed", type_=c.duration_ms.type)
    done = (update(_steps).where(c.request_id == bindparam("w_id"), c.name == bindparam("s_name"), leased)
            .values(values).cte("s"))
    columns: list[Any] = [select(func.count()).select_from(r).scalar_subquery()]
    if start:
        begun = (update(_steps).where(c.request_id == bindparam("w_id"), c.name == bindparam("n_name"), leased)
                 .values(start_values(bindparam("n_now", type_=c.started_at.type)))
                 .returning(c.attempts).cte("n"))
        columns.append(select(begun.c.attempts).scalar_subquery())
    return select(*columns).add_cte(done)


@cache
def _step_stmt(keys: tuple[str, ...]) -> Executable:
    c = _steps.c
    values: dict[str, Any] = {k: bindparam(f"w_{k}", type_=c[k].type) for k in keys}
    values["duration_ms"] = func.coalesce(c.duration_ms, 0) + bindparam("w_elapsed", type_=c.duration_ms.type)
    return (update(_steps).where(c.request_id == bindparam("w_request_id"), c.name == bindparam("w_name"))
            .values(values))
