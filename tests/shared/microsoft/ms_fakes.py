"""Test doubles for the Microsoft clients: a fake clock and a fake Microsoft behind httpx.MockTransport."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.microsoft.limiter import Limiter, Limits

PARTNER = "11111111-1111-1111-1111-111111111111"
CUSTOMER = "22222222-2222-2222-2222-222222222222"
SECRET = "s3cr3t-client-secret-value"
REFRESH = "stored-refresh-token-value"
LOGIN = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com/v1.0"
PC = "https://api.partnercenter.microsoft.com/v1"
EXO = "https://outlook.office365.com/adminapi/beta"
# The limiter tests' db on the session's private Redis (tests/conftest.py redis_server).
LIMITER_TEST_DB = 12

Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    """Unix-time clock whose sleep moves time forward instead of waiting."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += max(0.0, seconds)


def access_token(tenant: str, n: int) -> str:
    """Shaped like a JWT so the scrubbing rules see what they would see in production."""
    return f"eyJ0eXAiOiJKV1Qi.eyJ0aWQiOiJ{tenant[:8]}{n:04d}abcdefgh.c2lnbmF0dXJlc2ln{n:04d}"


@dataclass
class FakeMicrosoft:
    """Answers sign-in itself and sends every other request to the route registered for it."""

    routes: list[tuple[str, str, Handler]] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    token_reply: Callable[[dict[str, str]], httpx.Response] | None = None
    unknown_tenants: set[str] = field(default_factory=set)

    def on(self, method: str, url_prefix: str, handler: Handler | httpx.Response | list[Any]) -> None:
        """Route by method and URL prefix; a list answers in turn (the last one repeats)."""
        if isinstance(handler, httpx.Response):
            fixed = handler
            self.routes.insert(0, (method, url_prefix, lambda _r: fixed))
        elif isinstance(handler, list):
            queue = list(handler)

            def next_answer(request: httpx.Request) -> httpx.Response:
                item = queue.pop(0) if len(queue) > 1 else queue[0]
                if isinstance(item, Exception):
                    raise item
                return item(request) if callable(item) else item
            self.routes.insert(0, (method, url_prefix, next_answer))
        else:
            self.routes.insert(0, (method, url_prefix, handler))

    def api_requests(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.host != httpx.URL(LOGIN).host]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        url = str(request.url)
        if url.startswith(LOGIN):
            return self._login(request)
        for method, prefix, handler in self.routes:
            if request.method == method and url.startswith(prefix):
                return handler(request)
        return httpx.Response(599, json={"error": {"code": "NoRoute", "message": f"no route {url}"}})

    def _login(self, request: httpx.Request) -> httpx.Response:
        parts = request.url.path.strip("/").split("/")
        tenant = parts[0]
        if request.url.path.endswith("/.well-known/openid-configuration"):
            if tenant in self.unknown_tenants:
                return httpx.Response(400, json={"error": "invalid_tenant", "error_description": "AADSTS90002"})
            base = f"{LOGIN}/{tenant}"
            return httpx.Response(200, json={
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{LOGIN}/{tenant}/v2.0",
            })
        form = dict(httpx.QueryParams(request.content.decode()))
        form["_tenant"] = tenant
        self.token_requests.append(form)
        if self.token_reply is not None:
            return self.token_reply(form)
        token = access_token(tenant, len(self.issued))
        self.issued.append(token)
        body: dict[str, Any] = {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                                "access_token": token}
        if form.get("grant_type") == "refresh_token":
            body["refresh_token"] = f"rotated-{len(self.issued)}"
        return httpx.Response(200, json=body)


def graph_error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                details: list[dict[str, str]] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "innerError": {"request-id": "x"},
                      "details": details or []}}
    return httpx.Response(status, json=body, headers=headers)


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None



# What the product's defaults give one key, in the tests that drive a limiter directly.
LIMITS = Limits(rate=100.0, burst=10.0, concurrency=4, write_concurrency=2, lease_s=40.0)


def close_key(limiter: Limiter, key: str, seconds: float, limits: Limits = LIMITS) -> None:
    """Microsoft answered 429 + Retry-After `seconds` to a call of `key` (through the public door)."""
    grant = limiter.acquire(key, limits, write=False, max_wait=60.0, reserved=False)
    assert grant.reason == "ok", grant
    limiter.release(key, limits, grant, "throttled", seconds)
