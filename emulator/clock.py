"""Wall-clock helpers: world timestamps are wall time so a saved state file stays meaningful."""
from __future__ import annotations

import time
from datetime import UTC, datetime

now = time.time


def iso(ts: float, *, fraction: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if fraction:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
