"""Retry rules: which errors repeat, how long to wait (Retry-After, capped backoff), when to give up."""
from __future__ import annotations

import email.utils
import re
from collections.abc import Callable

from tenacity import RetryCallState
from tenacity.stop import stop_base

from shared.backoff import backoff as shared_backoff
from shared.microsoft.errors import Throttled, Transient

# First backoff step; doubles per attempt up to settings.retry_max_wait_s.
BACKOFF_BASE_S = 0.5
# Without a Retry-After, a 429 still closes the tenant for at least this long.
DEFAULT_RETRY_AFTER_S = 1.0
# Spreads the wake-ups of processes released by the same Retry-After.
THROTTLE_JITTER_MAX_S = 0.25

_TRY_AGAIN_IN = re.compile(r"try again in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: a (possibly fractional) number or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def retry_after_from_text(text: str) -> float | None:
    """Partner Center also says it in words: "Rate limit is exceeded. Try again in 57 seconds."."""
    match = _TRY_AGAIN_IN.search(text)
    return float(match.group(1)) if match else None


def backoff(attempt: int, max_wait: float, random: Callable[[], float]) -> float:
    """shared.backoff's rule from BACKOFF_BASE_S, capped at `max_wait`."""
    return shared_backoff(attempt, base=BACKOFF_BASE_S, cap=max_wait, rand=random)


def should_retry(exc: BaseException, idempotent: bool) -> bool:
    """Only Throttled and Transient repeat; an ambiguous failure repeats only when that is safe."""
    if isinstance(exc, Throttled):
        return True
    if isinstance(exc, Transient):
        return idempotent or not exc.ambiguous
    return False


class Waiter:
    """tenacity `wait`: honour Retry-After exactly (plus a little jitter), else back off."""

    def __init__(self, max_wait: float, random: Callable[[], float]) -> None:
        self._max_wait = max_wait
        self._random = random

    def __call__(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        pause = backoff(state.attempt_number, self._max_wait, self._random)
        if isinstance(exc, Throttled):
            return exc.retry_after + self._random() * min(THROTTLE_JITTER_MAX_S, exc.retry_after / 10)
        if isinstance(exc, Transient) and exc.retry_after is not None:
            return max(exc.retry_after, pause)
        return pause


class BudgetStop(stop_base):
    """tenacity `stop`: give up when the next wait would end past the operation's deadline."""

    def __init__(self, clock: Callable[[], float], deadline: float) -> None:
        self._clock = clock
        self._deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        return self._clock() + state.upcoming_sleep > self._deadline
