"""Hot statements run straight on the driver's cursor, compiled once, bound and converted as SQLAlchemy would.

An accept or a pipeline step runs a handful of short statements; SQLAlchemy spends about 120 us of CPU
on each around the driver's 45 us (execution context, cache-key lookup, parameter and result set-up),
a fifth of an accept. `execute()` compiles a Core statement once per dialect and set of parameter
names, then only applies the type processors SQLAlchemy would apply (binds in, results out) around
psycopg's `cursor.execute`. Errors come out as SQLAlchemy's own (IntegrityError, OperationalError…),
through the connection, which also invalidates a connection the database dropped.

Anything this cannot reproduce exactly runs through SQLAlchemy as before: other dialects (SQLite in
the embedded default and unit tests), executemany, expanding IN parameters, statements whose
defaults or implicit RETURNING SQLAlchemy computes at execution time.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler


@dataclass(frozen=True, slots=True)
class _Plan:
    sql: str
    compiled: SQLCompiler
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]
    results: tuple[tuple[int, Callable[[Any], Any]], ...]


class Rows:
    """What a caller reads of a raw execution: the same calls on SQLAlchemy's CursorResult work alike."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    def all(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def __iter__(self) -> Any:
        return iter(self._rows)


_plans: dict[tuple[Any, str, tuple[str, ...]], _Plan | None] = {}


def execute(conn: Connection, stmt: Executable, params: Mapping[str, Any]) -> Any:
    """`conn.execute(stmt, params)` for one parameter set; rows are plain tuples (read them by position)."""
    dialect = conn.dialect
    key = (stmt, dialect.name, tuple(params))
    try:
        plan = _plans[key]
    except KeyError:
        plan = _plans[key] = _prepare(stmt, dialect, tuple(params))
    if plan is None:
        return conn.execute(stmt, dict(params))
    values = plan.compiled.construct_params(params, _check=False)
    for name, process in plan.binds:
        value = values.get(name)
        if value is not None:
            values[name] = process(value)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(plan.sql, values)
        rows: list[Any] = list(cursor.fetchall()) if cursor.description is not None else []
        rowcount = cursor.rowcount
    except Exception as exc:  # what SQLAlchemy raises for it, and the connection invalidated if it died
        conn._handle_dbapi_exception(exc, plan.sql, values, cursor, None)
    finally:
        cursor.close()
    if plan.results and rows:
        rows = [_convert(row, plan.results) for row in rows]
    return Rows(rows, rowcount)


def _convert(row: Sequence[Any], results: tuple[tuple[int, Callable[[Any], Any]], ...]) -> tuple[Any, ...]:
    out = list(row)
    for i, process in results:
        out[i] = process(out[i])
    return tuple(out)


def _prepare(stmt: Executable, dialect: Dialect, names: tuple[str, ...]) -> _Plan | None:
    if dialect.name != "postgresql" or dialect.driver != "psycopg" or dialect.paramstyle != "pyformat":
        return None
    compiled = stmt.compile(dialect=dialect, column_keys=list(names))  # type: ignore[attr-defined]
    if not isinstance(compiled, SQLCompiler):
        return None
    sql = compiled.string
    if ("POSTCOMPILE" in sql or compiled.escaped_bind_names or compiled.insert_prefetch
            or compiled.update_prefetch or compiled.implicit_returning or compiled.literal_execute_params):
        return None  # work SQLAlchemy does per execution: leave it to SQLAlchemy
    binds = tuple((name, proc) for name, proc in compiled._bind_processors.items()
                  if proc is not None and callable(proc))
    results = []
    for i, column in enumerate(compiled._result_columns):
        proc = column.type._cached_result_processor(dialect, None)
        if proc is not None:
            results.append((i, proc))
    return _Plan(sql, compiled, binds, tuple(results))
