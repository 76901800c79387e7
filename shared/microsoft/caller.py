"""One logical operation against Microsoft: limiter slot, token, request id, typed errors, short retries.

Waiting inside a call is bounded: a single wait (Retry-After, backoff, a busy or closed tenant) longer
than `retry_inline_wait_s` is never slept; the attempt ends with Throttled/Transient carrying the time
to wait, and the pipeline reschedules the step. Shorter waits are slept in `Caller._pause` (the only
sleep on a task's path), at most `retry_budget_s` in all per operation.
"""
from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import (
    MicrosoftError,
    Throttled,
    Transient,
    error_from_response,
)
from shared.microsoft.limiter import Grant, Limiter, Limits, key_label
from shared.microsoft.retry import (
    DEFAULT_RETRY_AFTER_S,
    backoff,
    parse_retry_after,
    pause_before_retry,
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
_READ_METHODS = {"GET", "HEAD", "OPTIONS"}
# A lease outlives the longest call it can cover (the HTTP timeout) by this much.
LEASE_MARGIN_S = 10.0
# Polling for a free concurrency slot: calls take tens of milliseconds.
BUSY_POLL_S = (0.005, 0.1)
# A tenant whose slots stayed taken for the whole inline wait: come back after this long.
BUSY_RETRY_AFTER_S = 1.0

ApiName = Literal["graph", "partner_center", "exchange"]


@dataclass(frozen=True)
class Api:
    """One Microsoft API: where it lives, which token it takes, what one key may do."""

    service: ApiName
    base_url: str
    scope: str
    limits: Limits

    @classmethod
    def all_from(cls, settings: Settings) -> dict[ApiName, Api]:
        def limits(rate: float, burst: float) -> Limits:
            return Limits(rate, burst, settings.ms_concurrency_per_tenant,
                          min(settings.ms_write_concurrency_per_tenant, settings.ms_concurrency_per_tenant),
                          settings.ms_timeout_s + LEASE_MARGIN_S)

        return {
            "graph": cls("graph", f"{settings.ms_graph_url}/v1.0", settings.ms_graph_scope,
                         limits(settings.graph_rate_per_tenant, settings.graph_burst_per_tenant)),
            "partner_center": cls("partner_center", f"{settings.ms_partner_center_url}/v1",
                                  settings.ms_partner_center_scope,
                                  limits(settings.partner_center_rate, settings.partner_center_burst)),
            "exchange": cls("exchange", f"{settings.ms_exchange_url}/adminapi/beta", settings.ms_exchange_scope,
                            limits(settings.exchange_rate_per_tenant, settings.exchange_burst_per_tenant)),
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
    write: bool
    request_id: str
    deadline: float
    attempts: int = 0


class Caller:
    """Sends operations for every client of the process; the per-key state lives in the limiter."""

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
        self._inline_wait = settings.retry_inline_wait_s
        self._budget = settings.retry_budget_s

    def call(self, service: ApiName, *, credential: PartnerCredential, token_tenant: str, limit_key: str,
             method: str, url: str, params: Mapping[str, Any] | None = None, json: Any = None,
             headers: Mapping[str, str] | None = None, idempotent: bool | None = None,
             write: bool | None = None, request_id: str | None = None) -> httpx.Response:
        """Send one operation, retrying Throttled/Transient while the waits are short; 2xx or typed error.

        Every attempt carries the same request id. `idempotent` (default: by HTTP method) says whether a
        request that may already have reached Microsoft can be sent again; `write` (default: anything
        but GET/HEAD) takes one of the tenant's fewer write slots. `request_id` fixes the id for an
        operation that outlives this call (a purchase re-sent by a later task keeps its MS-RequestId).
        """
        op = _Operation(self.apis[service], credential, token_tenant, limit_key, method.upper(), url, params,
                        json, dict(headers or {}), write if write is not None else method.upper() not in
                        _READ_METHODS, request_id or str(uuid.uuid4()), self._clock() + self._budget)
        safe = idempotent if idempotent is not None else op.method in _IDEMPOTENT_METHODS
        while True:
            try:
                return self._attempt(op)
            except (Throttled, Transient) as exc:
                # Our limiter's own refusals (status None) come after the waiting it allows: not again.
                if not should_retry(exc, safe) or (isinstance(exc, Throttled) and exc.status is None):
                    raise
                pause = pause_before_retry(exc, op.attempts, self._max_wait, self._random)
                if op.attempts >= self._max_attempts or not self._may_wait(op, pause):
                    if isinstance(exc, Transient) and (exc.retry_after or 0.0) < pause:
                        exc.retry_after = pause  # what the pipeline should wait before the next attempt
                    raise
                log.info("%s %s %s: %s; retrying in %.2fs (attempt %d, request_id=%s)", op.api.service,
                         op.method, _path(op.url), type(exc).__name__, pause, op.attempts, op.request_id)
                self._pause(pause)

    def _attempt(self, op: _Operation) -> httpx.Response:
        op.attempts += 1
        token = self._tokens.token(op.credential, op.token_tenant, op.api.scope)
        grant = self._take_slot(op)
        outcome: Literal["ok", "throttled", "neutral"] = "neutral"
        retry_after: float | None = None
        try:
            response = self._send(op, token)
            # A token Microsoft refuses before its expiry (revoked, tenant reset): one fresh one, once.
            if response.status_code == 401:
                self._tokens.forget(op.credential, op.token_tenant)
                response = self._send(op, self._tokens.token(op.credential, op.token_tenant, op.api.scope))
            if response.is_success:
                outcome = "ok"
                return response
            error = self._error(op, response)
            if isinstance(error, Throttled):
                outcome, retry_after = "throttled", error.retry_after
            elif not error.retryable:
                outcome = "ok"  # Microsoft answered (404, 409, ...): as far as throttling goes, it got through
            raise error
        finally:
            closed = self._limiter.release(op.limit_key, op.api.limits, grant, outcome, retry_after)
            if closed > 0:
                counters.blocked(key_label(op.limit_key), closed)

    def _take_slot(self, op: _Operation) -> Grant:
        """A slot of the key's rate and concurrency, waiting for it only while the waits are short."""
        reserved = False
        busy_since: float | None = None
        poll = BUSY_POLL_S[0]
        while True:
            grant = self._limiter.acquire(op.limit_key, op.api.limits, write=op.write,
                                          max_wait=self._inline_wait, reserved=reserved)
            if grant.reason == "ok":
                return grant
            reserved = grant.holds_reservation
            wait = grant.wait
            if grant.reason == "busy":
                busy_since = self._clock() if busy_since is None else busy_since
                if self._clock() - busy_since >= self._inline_wait:
                    raise Throttled(f"{op.limit_key} has {op.api.limits.concurrency} calls in flight",
                                    retry_after=BUSY_RETRY_AFTER_S, status=None, request_id=op.request_id)
                wait, poll = poll * (0.5 + self._random()), min(poll * 2, BUSY_POLL_S[1])
            if not self._may_wait(op, wait):
                # Our own limiter's answer (status None): nothing was sent.
                raise Throttled(f"{op.limit_key} is throttled for {wait:.1f}s more", retry_after=wait,
                                status=None, request_id=op.request_id)
            self._pause(wait)

    def _may_wait(self, op: _Operation, seconds: float) -> bool:
        return seconds <= self._inline_wait and self._clock() + seconds <= op.deadline

    def _pause(self, seconds: float) -> None:
        # The one sleep on a task's path: each shorter than retry_inline_wait_s (_may_wait), and all of
        # one operation's inside retry_budget_s (its deadline).
        self._sleep(seconds)

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
        text = response.text
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
        if retry_after is None and (status == 429 or status >= 500):
            retry_after = retry_after_from_text(text)
        if status == 429 and retry_after is None:
            retry_after = max(DEFAULT_RETRY_AFTER_S, backoff(op.attempts, self._max_wait, self._random))
        error = error_from_response(status, text, op.api.service, request_id=op.request_id,
                                    retry_after=retry_after, tenant_id=op.token_tenant, partner=op.credential.app)
        if isinstance(error, Throttled) and error.status == 429:
            counters.throttled(key_label(op.limit_key))
        return error


def _path(url: str) -> str:
    """The path only: queries may carry UPNs and filters, and logs do not need them."""
    return httpx.URL(url).path


def _log_call(op: _Operation, outcome: str, started: float) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s %s -> %s request_id=%s attempt=%d elapsed_ms=%.1f", op.api.service, op.method,
                  _path(op.url), outcome, op.request_id, op.attempts, (time.perf_counter() - started) * 1000)
