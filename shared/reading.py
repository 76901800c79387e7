"""A read-only unit of work whose loaded objects stay readable once it has ended (rolled back)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from shared.db.uow import UnitOfWork


@contextmanager
def reading(uow: UnitOfWork) -> Iterator[Session]:
    """`with reading(uow) as s:` — nothing is written; the objects read are detached, not expired."""
    with uow:
        yield uow.session
        # Detached before the closing rollback, so their loaded attributes survive it.
        uow.session.expunge_all()
