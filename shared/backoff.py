"""The one backoff rule: capped exponential steps with "equal" jitter (half the step, plus up to half)."""
from __future__ import annotations

import random as _random
from collections.abc import Callable


def backoff(attempt: int, *, base: float, cap: float, factor: float = 2.0,
            rand: Callable[[], float] = _random.random) -> float:
    """The wait before try `attempt + 1` (attempt 1 is the first failure): `base * factor**(attempt-1)`,
    capped at `cap`, then somewhere in its upper half, so processes released together do not return
    together (never below half the step, which keeps the total wait predictable)."""
    step = min(cap, base * factor ** max(0, attempt - 1))
    return step / 2 + rand() * step / 2
