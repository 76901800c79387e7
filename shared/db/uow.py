"""Unit of work: one session and one transaction, committed on success, rolled back on error."""
from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from shared.db.engine import session_factory


class UnitOfWork:
    """`with UnitOfWork() as uow:` … `uow.commit()`; leaving without commit rolls back.

    `after_commit(fn)` registers work that must only happen once the data is durable
    (publishing a Celery message, for instance).
    """

    def __init__(self, factory: sessionmaker[Session] | None = None, *, autocommit: bool = False) -> None:
        self._factory = factory
        self._autocommit = autocommit
        self._after: list[Callable[[], None]] = []
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = (self._factory or session_factory())()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is None and self._autocommit:
                self.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()

    def commit(self) -> None:
        self.session.commit()
        after, self._after = self._after, []
        for fn in after:
            fn()

    def rollback(self) -> None:
        self.session.rollback()
        self._after.clear()

    def after_commit(self, fn: Callable[[], None]) -> None:
        self._after.append(fn)
