"""Keyset paging for lists that grow: an opaque cursor holding the sort key of the last item served."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from shared.db.types import UTCDateTime
from shared.errors import InvalidInput

T = TypeVar("T")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def fetch_page(session: Session, stmt: Select[Any], keys: tuple[InstrumentedAttribute[Any], ...],
               cursor: str | None, limit: int, *, descending: bool = False) -> Page[Any]:
    """`stmt` (selecting one entity) ordered by `keys` (the last one unique), after `cursor`, `limit` items."""
    if cursor:
        values = _decode(cursor, keys)
        bound = tuple_(*keys)
        stmt = stmt.where(bound < tuple_(*values) if descending else bound > tuple_(*values))
    stmt = stmt.order_by(*(k.desc() if descending else k.asc() for k in keys)).limit(limit + 1)
    rows = list(session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = _encode([getattr(rows[-1], k.key) for k in keys]) if more and rows else None
    return Page(rows, nxt)


def _encode(values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    return base64.urlsafe_b64encode(orjson.dumps(plain)).decode().rstrip("=")


def _decode(cursor: str, keys: tuple[InstrumentedAttribute[Any], ...]) -> list[Any]:
    try:
        values = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(keys):
            raise ValueError("wrong shape")
        out = []
        for key, value in zip(keys, values, strict=True):
            if isinstance(key.type, UTCDateTime):
                value = datetime.fromisoformat(value)
                if value.tzinfo is None:
                    raise ValueError("naive time")
            elif not isinstance(value, str) or "\x00" in value:
                raise ValueError("not a string")
            out.append(value)
        return out
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise InvalidInput("invalid cursor", [{"loc": ["query", "cursor"], "msg": "not a cursor this API gave",
                                               "type": "invalid_cursor"}]) from None
