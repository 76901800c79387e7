"""What a step reports: done, wait (durable timer), blocked (a person must act) or failed."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Done:
    note: str | None = None
    skipped: bool = False
    # The next step must not start before this (e.g. a mailbox cannot exist yet): a durable timer.
    not_before: datetime | None = None


@dataclass(frozen=True)
class Wait:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Blocked:
    reason: str
    message: str


@dataclass(frozen=True)
class Failed:
    code: str
    message: str


@dataclass(frozen=True)
class Retry:
    """Engine-internal: try the same step again after `delay` seconds."""

    delay: float
    code: str
    message: str


Outcome = Done | Wait | Blocked | Failed


class StepFailed(Exception):
    """Raised from deep inside a step; the engine maps exceptions to outcomes:

        StepFailed(code, message)    -> Failed
        StepBlocked(reason, message) -> Blocked
        RetrySoon(delay, reason)     -> a short retry (replication lag, an answer not yet readable)

    Throttled/Transient Microsoft errors that escaped the client's own budget become short retries;
    any other exception fails the request with `internal_error`.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StepBlocked(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class RetrySoon(Exception):
    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason
