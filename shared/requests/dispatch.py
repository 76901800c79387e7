"""Publishing requests to the broker, only after the transaction that wrote them has committed.

`shared` does not import Celery: the composition root (API start-up, worker start-up) sets the
publisher; by default it is `worker.canvas.publish`, imported on first use.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shared.db.uow import UnitOfWork


@dataclass(frozen=True)
class RequestRef:
    """Enough to build the chain for a request from a given step, without reading the database.

    `dispatch` is the request's generation when this chain was decided: its messages carry it, and a
    message of an older generation stops at its claim (the chain was published again since)."""

    id: str
    kind: str
    from_step: str
    dispatch: int


Publisher = Callable[[Sequence[RequestRef]], None]
_publisher: Publisher | None = None


def set_publisher(publisher: Publisher | None) -> None:
    global _publisher
    _publisher = publisher


def get_publisher() -> Publisher:
    global _publisher
    if _publisher is None:
        from worker.canvas import publish  # composition by default, imported late to keep layers apart

        _publisher = publish
    return _publisher


def publish_after_commit(uow: UnitOfWork, refs: Sequence[RequestRef]) -> None:
    """Send the chains once `uow` commits; if publishing fails the reconciler re-drives them."""
    if not refs:
        return
    refs = list(refs)

    def _send() -> None:
        try:
            get_publisher()(refs)
        except Exception:  # the rows are durable; the reconciler will pick them up
            import logging

            logging.getLogger(__name__).warning("publishing %d request(s) failed; reconciler will re-drive",
                                                len(refs), exc_info=True)

    uow.after_commit(_send)
