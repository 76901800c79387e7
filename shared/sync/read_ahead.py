"""Read the next Graph page while the current batch is written: a bounded read-ahead on one thread."""
from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Generic, TypeVar

# Graph answers and database writes take turns otherwise, each waiting on the other. At most
# `depth` pages wait in the queue, so memory stays flat; an error while reading is raised in the
# consumer at the point the failed page would have come.

T = TypeVar("T")
_POLL_S = 0.1


class _End:
    pass


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ReadAhead(Generic[T]):
    """`with ReadAhead(pages) as ahead: for page in ahead: ...`; leaving early stops the reader."""

    def __init__(self, items: Iterable[T], depth: int = 2) -> None:
        self._items = items
        self._queue: queue.Queue[T | _End | _Failed] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="sync-read-ahead", daemon=True)

    def __enter__(self) -> ReadAhead[T]:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        # A reader inside an HTTP call finishes it (bounded by the client's timeout) and then stops.
        self._thread.join(timeout=_POLL_S * 5)

    def __iter__(self) -> Iterator[T]:
        while True:
            item = self._queue.get()
            if isinstance(item, _End):
                return
            if isinstance(item, _Failed):
                raise item.exc
            yield item

    def _read(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    return
            self._put(_End())
        except BaseException as exc:  # handed to the consumer, which decides
            self._put(_Failed(exc))

    def _put(self, item: T | _End | _Failed) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False
