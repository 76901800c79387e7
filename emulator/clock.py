"""The emulator's one clock for Microsoft's time: throttle windows, replication lag, mailbox delays, token expiry."""
from __future__ import annotations

import asyncio
import time as _time
from datetime import UTC, datetime
from typing import Any


class Clock:
    """Real time unless frozen. A frozen clock stands still until `advance`d, and its `sleep` advances it
    instead of waiting, so tests move Microsoft's time without waiting for it. Freezing and resuming never
    move time backwards; only `reset` (with the world emptied) returns to plain real time.

    Wall time (`time`) stamps the world, so a saved state file stays meaningful; `monotonic` paces the
    throttle buckets. Both carry the same offset.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._frozen: tuple[float, float] | None = None  # the real (wall, monotonic) readings when frozen

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    def time(self) -> float:
        return (self._frozen[0] if self._frozen else _time.time()) + self._offset

    def monotonic(self) -> float:
        return (self._frozen[1] if self._frozen else _time.monotonic()) + self._offset

    async def sleep(self, seconds: float) -> None:
        if self._frozen is None:
            await asyncio.sleep(seconds)
            return
        self.advance(seconds)
        await asyncio.sleep(0)  # still a suspension point, as a real wait would be

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    def freeze(self) -> None:
        if self._frozen is None:
            self._frozen = (_time.time(), _time.monotonic())

    def resume(self) -> None:
        """Real time again, from where the frozen clock stood."""
        if self._frozen is not None:
            self._offset -= _time.monotonic() - self._frozen[1]
            self._frozen = None

    def reset(self) -> None:
        self._offset = 0.0
        self._frozen = None

    def view(self) -> dict[str, Any]:
        now = self.time()
        return {"frozen": self.frozen, "time": now, "now": iso(now, fraction=True)}


def iso(ts: float, *, fraction: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if fraction:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
