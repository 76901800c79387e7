"""Publishing requests to the broker, only after the transaction that wrote them has committed.

`shared` imports no entry point: whoever starts a process that publishes installs the publisher
(commands/apiserver.py's factory for the API, worker/app.py's start-up signals for worker and beat).
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


class NoPublisher(RuntimeError):
    """The process publishes requests but its entry point installed no publisher (a wiring mistake)."""


def set_publisher(publisher: Publisher | None) -> None:
    """Install the process's publisher (None: uninstall)."""
    global _publisher
    _publisher = publisher


def get_publisher() -> Publisher:
    if _publisher is None:
        raise NoPublisher("no request publisher installed in this process: its entry point must call "
                          "shared.requests.dispatch.set_publisher(...) at start-up "
                          "(worker.app.install_publisher() installs Celery's)")
    return _publisher


def publish_after_commit(uow: UnitOfWork, refs: Sequence[RequestRef]) -> None:
    """Send the chains once `uow` commits; if publishing fails the reconciler re-drives them."""
    if not refs:
        return
    get_publisher()  # an unwired process fails here, in the caller, not later in a swallowed warning
    refs = list(refs)

    def _send() -> None:
        try:
            get_publisher()(refs)
        except Exception:  # the rows are durable; the reconciler will pick them up
            import logging

            logging.getLogger(__name__).warning("publishing %d request(s) failed; reconciler will re-drive",
                                                len(refs), exc_info=True)

    uow.after_commit(_send)
