"""Messages waiting per broker queue, for /metrics: read by whatever the entry point installed.

The core does not know the broker (worker.app installs a reader that asks kombu for each queue's size,
every priority level included); a process with none installed reports no queue depth.
"""
from __future__ import annotations

from collections.abc import Callable

QueueDepths = Callable[[], dict[str, int]]

_reader: QueueDepths | None = None


def set_reader(reader: QueueDepths | None) -> None:
    global _reader
    _reader = reader


def read() -> dict[str, int]:
    return _reader() if _reader is not None else {}
