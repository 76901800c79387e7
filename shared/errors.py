"""Errors the service layer raises for callers (the API maps each to a problem+json answer).

Exception tree (each carries a stable machine `code` and the HTTP status it means):

    ServiceError
    ├── ObjectNotFound        404 not_found — also every object outside the caller's scope
    ├── NotAllowed            403 forbidden — the caller's role may not do this at all
    ├── InvalidInput          422 validation_error — with `errors` [{loc, msg, type}]
    ├── StateConflict         409 <code> — upn_conflict, service_dependency, mca_not_signed, …
    └── MicrosoftUnavailable  502/503 microsoft_unavailable — a live call failed
"""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, detail: str, *, code: str | None = None, status: int | None = None,
                 **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        if status:
            self.status = status
        self.extra = extra


class ObjectNotFound(ServiceError):
    status = 404
    code = "not_found"

    def __init__(self, what: str, object_id: str | None = None) -> None:
        super().__init__(f"{what} {object_id} not found" if object_id else f"{what} not found")


class NotAllowed(ServiceError):
    status = 403
    code = "forbidden"


class InvalidInput(ServiceError):
    status = 422
    code = "validation_error"

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors or [])


class StateConflict(ServiceError):
    status = 409
    code = "conflict"

    def __init__(self, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, code=code, **extra)


class MicrosoftUnavailable(ServiceError):
    """A live call to Microsoft failed: 503 when it may pass by itself (with Retry-After), else 502."""

    status = 502
    code = "microsoft_unavailable"

    def __init__(self, detail: str, *, retry_after: float | None = None, status: int = 502) -> None:
        super().__init__(detail, status=status)
        self.retry_after = retry_after


class RateLimited(ServiceError):
    """429 rate_limited: the caller is over its fair share; it may try again after `retry_after` seconds."""

    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, *, retry_after: float) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
