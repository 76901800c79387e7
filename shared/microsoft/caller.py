"""One logical operation against Microsoft: limiter, token, request id, typed errors, retries."""
from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt

from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import (
    MicrosoftError,
    Throttled,
    Transient,
    error_from_response,
)
from shared.microsoft.limiter import Limiter
from shared.microsoft.retry import (
    DEFAULT_RETRY_AFTER_S,
    BudgetStop,
    Waiter,
    backoff,
    parse_retry_after,
    retry_after_from_text,
    should_retry,
)
from shared.microsoft.tokens import TokenProvider
from shared.observability import counters
from shared.settings import Settings

log = logging.getLogger("shared.microsoft")

# Nothing reached Microsoft: safe to repeat any call.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_IDEMPOTENT_METHODS = {"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"}

ApiName = Literal["graph", "partner_center", "exchange"]


@dataclass(frozen=True)
class Api:
    """One Microsoft API: where it lives, which token it takes, how fast one key may call it."""

    service: ApiName
    base_url: str
    scope: str
    rate: float
    burst: float

    @classmethod
    def all_from(cls, settings: Settings) -> dict[ApiName, Api]:
        return {
            "graph": cls("graph", f"{settings.ms_graph_url}/v1.0", settings.ms_graph_scope,
                         settings.graph_rate_per_tenant, settings.graph_burst_per_tenant),
            "partner_center": cls("partner_center", f"{settings.ms_partner_center_url}/v1",
                                  settings.ms_partner_center_scope, settings.partner_center_rate,
                                  settings.partner_center_burst),
            "exchange": cls("exchange", f"{settings.ms_exchange_url}/adminapi/beta",
                            settings.ms_exchange_scope, settings.exchange_rate_per_tenant,
                            settings.exchange_burst_per_tenant),
        }


@dataclass
class _Operation:
    api: Api
    credential: PartnerCredential
    token_tenant: str
    limit_key: str
    method: str
    url: str
    params: Mapping[str, Any] | None
    json: Any
    headers: Mapping[str, str]
    request_id: str
    deadline: float
    attempts: int = 0


class Caller:
    """Sends operations for every client of the process; holds no per-tenant state itself."""

    def __init__(self, settings: Settings, http: httpx.Client, tokens: TokenProvider, limiter: Limiter, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 random: Callable[[], float] = random.random) -> None:
        self.apis = Api.all_from(settings)
        self._http = http
        self._tokens = tokens
        self._limiter = limiter
        self._sleep = sleep
        self._clock = clock
        self._random = random
        self._max_attempts = settings.retry_max_attempts
        self._max_wait = settings.retry_max_wait_s
        self._budget = settings.retry_budget_s

    def call(self, service: ApiName, *, credential: PartnerCredential, token_tenant: str, limit_key: str,
             method: str, url: str, params: Mapping[str, Any] | None = None, json: Any = None,
             headers: Mapping[str, str] | None = None, idempotent: bool | None = None) -> httpx.Response:
        """Send one operation, retrying Throttled/Transient within the budget; 2xx response or typed error.

        Every attempt carries the same request id. `idempotent` (default: by HTTP method) says whether a
        request that may already have reached Microsoft can be sent again.
        """
        api = self.apis[service]
        op = _Operation(api, credential, token_tenant, limit_key, method.upper(), url, params, json,
                        dict(headers or {}), str(uuid.uuid4()), self._clock() + self._budget)
        safe = idempotent if idempotent is not None else op.method in _IDEMPOTENT_METHODS
        retrying = Retrying(
            retry=retry_if_exception(lambda exc: should_retry(exc, safe)),
            wait=Waiter(self._max_wait, self._random),
            stop=stop_after_attempt(self._max_attempts) | BudgetStop(self._clock, op.deadline),
            sleep=self._sleep,
            before_sleep=lambda state: _log_retry(op, state.outcome, state.upcoming_sleep),
            reraise=True,
        )
        return retrying(self._attempt, op)

    def _attempt(self, op: _Operation) -> httpx.Response:
        op.attempts += 1
        refreshed = False
        while True:
            self._wait_for_slot(op)
            token = self._tokens.token(op.credential, op.token_tenant, op.api.scope)
            response = self._send(op, token)
            # A token Microsoft refuses before its expiry (revoked, tenant reset): one fresh one, once.
            if response.status_code == 401 and not refreshed:
                refreshed = True
                self._tokens.forget(op.credential, op.token_tenant)
                continue
            break
        if response.is_success:
            return response
        raise self._error(op, response)

    def _wait_for_slot(self, op: _Operation) -> None:
        """Take a slot from the key's bucket, sleeping out its rate and any blocked-until window."""
        while True:
            wait = self._limiter.acquire(op.limit_key, op.api.rate, op.api.burst)
            if wait <= 0:
                return
            if self._clock() + wait > op.deadline:
                raise Throttled(f"{op.limit_key} is throttled for {wait:.1f}s more, beyond the retry budget",
                                retry_after=wait, status=None, request_id=op.request_id)
            self._sleep(wait)

    def _send(self, op: _Operation, token: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **op.headers}
        if op.api.service == "partner_center":
            headers["MS-RequestId"] = op.request_id  # Partner Center's idempotency key
        else:
            headers["client-request-id"] = op.request_id
        started = time.perf_counter()
        try:
            response = self._http.request(op.method, op.url, params=op.params, json=op.json, headers=headers)
        except httpx.TransportError as exc:
            _log_call(op, f"failed ({type(exc).__name__})", started)
            raise Transient(f"{op.api.service} {op.method} unreachable ({type(exc).__name__})",
                            request_id=op.request_id, ambiguous=not isinstance(exc, _NOT_SENT)) from None
        _log_call(op, str(response.status_code), started)
        return response

    def _error(self, op: _Operation, response: httpx.Response) -> MicrosoftError:
        now = self._clock()
        text = response.text
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        if response.status_code == 429 and retry_after is None:
            retry_after = retry_after_from_text(text) or max(
                DEFAULT_RETRY_AFTER_S, backoff(op.attempts, self._max_wait, self._random))
        if retry_after is not None and response.status_code in (429, 503):
            # The whole key waits, in every process: nobody calls inside the announced window.
            self._limiter.block_until(op.limit_key, now + retry_after)
        if response.status_code == 429:
            counters.throttled(op.limit_key)
        return error_from_response(response.status_code, text, op.api.service,
                                   request_id=op.request_id, retry_after=retry_after)


def _path(url: str) -> str:
    """The path only: queries may carry UPNs and filters, and logs do not need them."""
    return httpx.URL(url).path


def _log_call(op: _Operation, outcome: str, started: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s %s -> %s request_id=%s attempt=%d elapsed_ms=%.1f", op.api.service, op.method,
                  _path(op.url), outcome, op.request_id, op.attempts, (time.perf_counter() - started) * 1000)


def _log_retry(op: _Operation, outcome: Any, pause: float) -> None:
    exc = outcome.exception() if outcome is not None else None
    log.info("%s %s %s: %s; retrying in %.2fs (attempt %d, request_id=%s)", op.api.service, op.method,
             _path(op.url), type(exc).__name__, pause, op.attempts, op.request_id)
