"""RFC 9457 problem+json for every error: service errors, validation, unknown routes, oversize bodies."""
from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from shared.errors import MicrosoftUnavailable, RateLimited, ServiceError

log = logging.getLogger("api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:m365-provisioner:problem:"

TITLES = {
    "validation_error": "The request is not valid",
    "unauthorized": "Missing or invalid API key",
    "forbidden": "This API key's role may not do this",
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "payload_too_large": "Request body too large",
    "conflict": "Conflict with the current state",
    "upn_conflict": "A user with this UPN already exists",
    "service_dependency": "A service this depends on is not provisioned",
    "tenant_not_connected": "The customer's tenant is not connected",
    "mca_not_signed": "The Microsoft Customer Agreement is not recorded",
    "gdap_missing": "No delegated (GDAP) access to the tenant",
    "gdap_roles_missing": "The GDAP relationship lacks a role the work needs",
    "consent_pending": "The partner app's consent has not taken effect in the tenant",
    "consent_missing": "The partner app has no consent in the tenant",
    "no_free_licences": "No free licences",
    "plan_not_enabled": "The plan is not enabled",
    "plan_limit_reached": "The plan's hard limit is reached",
    "sku_not_in_tenant": "The tenant has no subscription for a SKU of the plan",
    "adoption_requires_reseller": "The account was not created by the engine: a reseller or operator key is needed",
    "privileged_account": "The account holds a directory role",
    "idempotency_conflict": "Idempotency-Key reused with another request",
    "request_not_retryable": "The request cannot be retried",
    "request_not_cancellable": "The request cannot be cancelled",
    "request_in_progress": "Another request is still working on this",
    "microsoft_unavailable": "Microsoft did not answer as needed",
    "not_ready": "Not ready",
    "temporarily_unavailable": "Temporarily unavailable",
    "internal_error": "Internal error",
    "rate_limited": "Too many requests",
    "not_a_direct_reseller": "Only a direct reseller buys seats through the engine",
}
_HTTP_CODES = {400: "validation_error", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 415: "validation_error"}


def problem(status: int, code: str, detail: str, *, instance: str | None = None,
            headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": TYPE_BASE + code, "title": TITLES.get(code, code.replace("_", " ")),
                            "status": status, "detail": detail, "code": code}
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    headers = None
    if isinstance(exc, MicrosoftUnavailable) and exc.retry_after:
        headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    if isinstance(exc, RateLimited):  # whole seconds, rounded up: sooner would be refused again
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if exc.status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return problem(exc.status, exc.code, exc.detail, instance=request.url.path, headers=headers, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [_error(e) for e in exc.errors()]
    if any(e["type"] == "json_invalid" for e in errors):  # not JSON at all: the syntax is wrong, 400
        return problem(400, "validation_error", "the body is not valid JSON", instance=request.url.path,
                       errors=errors)
    return problem(422, "validation_error", f"{len(errors)} invalid field(s)", instance=request.url.path,
                   errors=errors)


def _error(e: Any) -> dict[str, Any]:
    loc = [p if isinstance(p, int | str) else str(p) for p in e.get("loc", ())]
    return {"loc": loc, "msg": str(e.get("msg", "invalid")), "type": str(e.get("type", "invalid"))}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "validation_error")
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(code, "error")
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.url.path}"
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; every method of the path belongs here.
        headers["Allow"] = ", ".join(_allowed_methods(request))
        detail = f"{request.method} is not allowed here; use {headers['Allow']}"
    return problem(exc.status_code, code, detail, instance=request.url.path, headers=headers or None)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _allowed_methods(request: Request) -> list[str]:
    # Ask the router for each method: included routers do not list their routes' methods themselves.
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _integrity_error(request: Request, exc: Exception) -> Response:
    # A concurrent call won a race on a unique key; nothing of this call was written.
    log.info("integrity error on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return problem(409, "conflict", "a concurrent change conflicts with this request; retry it",
                   instance=request.url.path)


async def _data_error(request: Request, exc: Exception) -> Response:
    # Input the validators let through but the database refuses (a value out of the column's range).
    return problem(422, "validation_error", "a value is not acceptable to the database", instance=request.url.path)


async def _database_busy(request: Request, exc: Exception) -> Response:
    # A deadlock victim, a lock or statement timeout, the database restarting: nothing was written,
    # and the same call a moment later will most likely pass.
    log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc.__class__.__name__)
    return problem(503, "temporarily_unavailable", "the database is busy or unavailable; retry shortly",
                   instance=request.url.path, headers={"Retry-After": "1"})


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "an unexpected error occurred", instance=request.url.path)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OperationalError, _database_busy)
    app.add_exception_handler(Exception, _unexpected)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem answers a route may give (the common ones are added for every route)."""
    return {status: problem_entry(status) for status in statuses}


DESCRIPTIONS = {
    400: "Malformed JSON (`validation_error`)",
    401: "Missing or invalid API key (`unauthorized`)",
    403: "The key's role may not do this (`forbidden`)",
    404: "Not found, or outside the key's scope (`not_found`)",
    409: "Conflict with the current state (see `code`)",
    413: "Body larger than the limit (`payload_too_large`)",
    422: "Invalid input (`validation_error`, with `errors`)",
    502: "Microsoft refused or failed the live call (`microsoft_unavailable`)",
    503: "Busy or unavailable, retry after `Retry-After`: Microsoft (`microsoft_unavailable`) or the "
         "database (`temporarily_unavailable`)",
    429: "Over the fair-use limit (`rate_limited`); retry after `Retry-After` seconds",
}


def problem_entry(status: int, description: str | None = None) -> dict[str, Any]:
    return {"description": description or DESCRIPTIONS.get(status, "Problem"),
            "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}

