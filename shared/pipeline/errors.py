"""How an exception escaping a step becomes an outcome: a retry (counted or not), blocked, or failed with a code."""
from __future__ import annotations

import random

from sqlalchemy.exc import OperationalError

from shared.backoff import backoff as shared_backoff
from shared.microsoft.errors import (
    AuthFailed,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidUsageLocation,
    MailboxNotReady,
    MicrosoftError,
    NoFreeLicences,
    NotFound,
    Throttled,
    Transient,
    UnverifiedDomain,
)
from shared.pipeline.outcomes import Blocked, Failed, Retry, RetrySoon, StepBlocked, StepFailed
from shared.settings import Settings
from shared.tenants.denials import access_blocked

# First short-retry delay after a transient failure; doubles per consecutive retry up to max_countdown_s.
RETRY_BASE_S = 2.0

_CODES: tuple[tuple[type[MicrosoftError], str], ...] = (
    (NoFreeLicences, "no_free_licences"),
    (InvalidUsageLocation, "invalid_usage_location"),
    (UnverifiedDomain, "unverified_domain"),
    (MailboxNotReady, "mailbox_not_ready"),
    (AuthFailed, "microsoft_auth_failed"),
    (Forbidden, "microsoft_forbidden"),
    (NotFound, "microsoft_not_found"),
    (Conflict, "microsoft_conflict"),
    (BadRequest, "microsoft_bad_request"),
)


def backoff(retries: int, settings: Settings) -> float:
    """shared.backoff's rule from RETRY_BASE_S (doubled once already: `retries` counts earlier ones)."""
    return shared_backoff(retries + 1, base=RETRY_BASE_S, cap=settings.max_countdown_s)


def microsoft_code(exc: MicrosoftError) -> str:
    return next((code for cls, code in _CODES if isinstance(exc, cls)), "microsoft_error")


def classify(exc: Exception, step_name: str, *, retries: int, settings: Settings,
             retryable: tuple[type[BaseException], ...] = ()) -> Failed | Blocked | Retry:
    if isinstance(exc, StepFailed):
        return Failed(exc.code, exc.message)
    if isinstance(exc, StepBlocked):
        return Blocked(exc.reason, exc.message)
    if isinstance(exc, RetrySoon):  # waiting for Microsoft (replication): the step bounds it itself
        return Retry(exc.delay, "retry", exc.reason, counted=False)
    if isinstance(exc, Throttled):
        # Honour Retry-After exactly, plus a little jitter so released callers do not stampede. Never
        # counted: a user is not failed because its tenant was busy.
        return Retry(max(1.0, exc.retry_after) + random.random(), "throttled", str(exc), counted=False)
    if isinstance(exc, Transient):
        return Retry(max(exc.retry_after or 0.0, backoff(retries, settings)), "microsoft_unavailable", str(exc))
    if isinstance(exc, MicrosoftError):
        # Access refusals (consent, GDAP roles, the reseller's credential) wait for a person, not a retry.
        return access_blocked(exc, step_name) or Failed(microsoft_code(exc), str(exc))
    if isinstance(exc, OperationalError):
        return Retry(backoff(retries, settings), "database_unavailable", "the database did not answer")
    if retryable and isinstance(exc, retryable):
        return Retry(backoff(retries, settings), "step_timeout", f"{step_name} ran out of time")
    # The message names the type only: an exception's text may carry data we must not store.
    return Failed("internal_error", f"unexpected {type(exc).__name__} in {step_name}")
