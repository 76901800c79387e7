"""What a step reports (done, wait, blocked, failed) and what its task does next (the verdict)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal


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
    """Engine-internal: try the same step again after `delay` seconds. `counted`: an error that spends
    the step's retry budget; waiting for Microsoft (throttling, replication lag) does not."""

    delay: float
    code: str
    message: str
    counted: bool = True


@dataclass(frozen=True)
class Verdict:
    """What the step's task does next: let the chain continue, stop it (Postgres says what follows: a
    durable timer, a person, the end), or run the same step again after `countdown` seconds."""

    action: Literal["continue", "halt", "retry"]
    reason: str = ""
    countdown: float = 0.0


Outcome = Done | Wait | Blocked | Failed


class StepFailed(Exception):
    """Raised from deep inside a step; the engine maps exceptions to outcomes:

        StepFailed(code, message)    -> Failed
        StepBlocked(reason, message) -> Blocked
        RetrySoon(delay, reason)     -> a retry that waits for Microsoft (replication lag, an answer
                                        not yet readable): it does not spend the step's retry budget

    Throttled Microsoft errors wait without spending the budget; Transient ones and database outages
    spend it; any other exception fails the request with `internal_error`.
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
