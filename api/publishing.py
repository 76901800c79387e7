"""The API's publisher: chains are handed to one background thread, so no caller waits on the broker."""

# `publish_after_commit` still decides *when* (after the commit); this decides *who waits*. Sending
# a chain costs broker round trips (a 1,000-user bulk call: about a second of them); an answer need
# not wait for them. Refs queued here but unsent when the process dies are durable rows in state
# queued: the beat reconciler re-drives them, as it does for messages Redis lost.
from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import cast

from shared.requests.dispatch import Publisher, RequestRef

log = logging.getLogger(__name__)
# One broker call takes at most this many chains; the rest wait for the next round.
BATCH_MAX = 2000
_STOP = object()


class BackgroundPublisher:
    """Callable like the publisher it wraps; the wrapped one runs on a daemon thread, in batches."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="api-publisher", daemon=True)
        self._thread.start()

    def __call__(self, refs: Sequence[RequestRef]) -> None:
        if refs:
            self._queue.put(list(refs))

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (within `timeout`), then stop."""
        self._queue.put(_STOP)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[RequestRef] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                else:
                    batch.extend(cast(list[RequestRef], item))
                if stopping or len(batch) >= BATCH_MAX:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._send(batch)

    def _send(self, batch: list[RequestRef]) -> None:
        try:
            self.inner(batch)
        except Exception:  # the rows are durable; the reconciler re-drives what was not sent
            log.warning("publishing %d request(s) failed; the reconciler will re-drive them", len(batch),
                        exc_info=True)
