"""Retry rules: which errors repeat, how long to wait (Retry-After, capped backoff), where a wait is read."""
from __future__ import annotations

import email.utils
import re
from collections.abc import Callable

from shared.backoff import backoff as shared_backoff
from shared.microsoft.errors import Throttled, Transient

# First backoff step; doubles per attempt up to settings.retry_max_wait_s.
BACKOFF_BASE_S = 0.5
# Without a Retry-After, a 429 still closes the tenant for at least this long.
DEFAULT_RETRY_AFTER_S = 1.0
# Spreads the wake-ups of processes released by the same Retry-After.
THROTTLE_JITTER_MAX_S = 0.25

# Partner Center: "Rate limit is exceeded. Try again in 57 seconds."; also seen in Exchange's answers.
_TRY_AGAIN_IN = re.compile(r"try again in (\d+(?:\.\d+)?) seconds?", re.IGNORECASE)
# Exchange's server-busy answers carry the wait in milliseconds (EWS's BackOffMilliseconds).
_BACK_OFF_MS = re.compile(r"backoffmilliseconds\W{0,4}(\d+)", re.IGNORECASE)


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
    """A wait said in words, when no header says it: "Try again in 57 seconds", "BackOffMilliseconds"."""
    match = _TRY_AGAIN_IN.search(text)
    if match:
        return float(match.group(1))
    match = _BACK_OFF_MS.search(text)
    return int(match.group(1)) / 1000 if match else None


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


def pause_before_retry(exc: Throttled | Transient, attempt: int, max_wait: float,
                       random: Callable[[], float]) -> float:
    """Honour Retry-After exactly (plus a little jitter), else back off."""
    if isinstance(exc, Throttled):
        return exc.retry_after + random() * min(THROTTLE_JITTER_MAX_S, exc.retry_after / 10)
    pause = backoff(attempt, max_wait, random)
    return max(exc.retry_after, pause) if exc.retry_after is not None else pause
