"""The emulator's ASGI application: routing, fault injection, per-route stats, error rendering."""
from __future__ import annotations

import asyncio
import hmac
import logging
import os
import random
from collections.abc import MutableMapping
from typing import Any, NoReturn

from .clock import Clock
from .errors import ApiError
from .faults import Faults
from .http import Request, Response, Route, Router
from .routes import (
    control,
    exchange,
    graph_delta,
    graph_directory,
    graph_users,
    login,
    partner_center,
    partner_center_orders,
)
from .routes.shapes import RENDERERS
from .stats import Stats
from .throttle import Throttle
from .tokens import TokenSigner
from .world import World

log = logging.getLogger("emulator")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_FAMILY_BY_PREFIX = (("/v1.0/", "graph"), ("/v1/", "partner_center"), ("/adminapi/", "exchange"),
                     ("/_emulator/", "control"))
_INJECTED = {
    "graph": {"500": ("generalException", "General exception while processing."),
              "503": ("serviceNotAvailable", "Service unavailable.")},
    "partner_center": {"500": ("5000", "An internal server error occurred."),
                       "503": ("5003", "The service is temporarily unavailable.")},
    "exchange": {"500": ("Microsoft.Exchange.Data.Storage.StorageTransientException", "A transient error occurred."),
                 "503": ("Microsoft.Exchange.Data.Storage.ConnectionFailedTransientException",
                         "The service is temporarily unavailable.")},
}


def build_router() -> Router:
    return Router([*control.ROUTES, *graph_delta.ROUTES, *graph_directory.ROUTES, *graph_users.ROUTES,
                   *partner_center.ROUTES, *partner_center_orders.ROUTES, *exchange.ROUTES, *login.ROUTES])


class Emulator:
    """Holds the world and the server-wide machinery; is itself the ASGI callable.

    `clock` is Microsoft's time for everything the emulator models (real time unless a test freezes it).
    """

    def __init__(self, world: World | None = None, *, seed: int | None = None, clock: Clock | None = None,
                 control_token: str | None = None) -> None:
        self.world = world or World()
        # The control API rewrites the world; where the emulator is reachable by others it takes a token.
        self.control_token = control_token or os.environ.get("EMULATOR_CONTROL_TOKEN") or None
        self.clock = clock or Clock()
        self.faults = Faults(random.Random(seed))
        self.stats = Stats()
        self.throttle = Throttle(self.clock)
        self.signer = TokenSigner(self.world.signing_key, self.clock)
        self.router = build_router()
        # Creating tenants checks domain uniqueness across the world, so it is serialised world-wide.
        self.create_lock = asyncio.Lock()

    def reset(self) -> None:
        """Empty world, default faults, zero counters, fresh throttle buckets, real time; the signing key stays."""
        self.world.reset()
        self.faults.reset()
        self.stats.reset()
        self.throttle.reset()
        self.clock.reset()

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        matched = self.router.match(method, path)
        if matched is None:
            await self._unrouted(scope, send)
            return
        found, params = matched
        req = Request(scope, params, self.clock)
        if method in _BODY_METHODS:
            req.body = await _read_body(receive)
        if found.family == "control":
            refused = self._control_refusal(req)
            await _send(send, refused if refused is not None else await self._handle(found, req))
            return
        delay = self.faults.latency_s()
        if delay:
            await self.clock.sleep(delay)
        injected = self.faults.injected_error() if found.family != "login" else None
        if injected == "drop":
            self.stats.injected_errors["drop"] += 1
            self.stats.record(found.key, 0, None)
            await _drop_connection(send)
        if injected is not None:
            self.stats.injected_errors[injected] += 1
            code, message = _INJECTED[found.family][injected]
            response = RENDERERS[found.family](req, ApiError(int(injected), code, message))
        else:
            response = await self._handle(found, req)
        self.stats.record(found.key, response.status, req.tenant_id)
        await _send(send, response)

    async def _handle(self, found: Route, req: Request) -> Response:
        try:
            return await found.handler(self, req)
        except ApiError as refused:
            return RENDERERS[found.family](req, refused)
        except (KeyError, ValueError, TypeError) as wrong:
            if found.family == "control":
                # Seeds are hand-written: a missing or mistyped field is the caller's error, not a crash.
                return RENDERERS["control"](req, ApiError(400, "invalid", f"bad request body: {wrong!r}"))
            log.exception("emulator bug while handling %s %s", req.method, req.path)
            return RENDERERS[found.family](req, ApiError(500, "InternalServerError", "Emulator error."))
        except Exception:
            log.exception("emulator bug while handling %s %s", req.method, req.path)
            return RENDERERS[found.family](req, ApiError(500, "InternalServerError", "Emulator error."))

    def _control_refusal(self, req: Request) -> Response | None:
        if self.control_token is None:
            return None
        given = req.header(b"authorization") or ""
        scheme, _, token = given.partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self.control_token.encode()):
            return None
        return RENDERERS["control"](req, ApiError(401, "unauthorized", "the control API needs "
                                                       "Authorization: Bearer $EMULATOR_CONTROL_TOKEN",
                                                  headers={"WWW-Authenticate": "Bearer"}))

    async def _unrouted(self, scope: MutableMapping[str, Any], send: Any) -> None:
        req = Request(scope, {}, self.clock)
        family = next((f for prefix, f in _FAMILY_BY_PREFIX if req.path.startswith(prefix)), "control")
        if self.router.allows_other_method(req.method, req.path):
            error = ApiError(405, "Request_BadRequest", f"The {req.method} method is not allowed here.")
        elif family == "graph":
            segment = req.path.rstrip("/").rsplit("/", 1)[-1]
            error = ApiError(400, "BadRequest", f"Resource not found for the segment '{segment}'.")
        else:
            error = ApiError(404, "1000" if family == "partner_center" else "NotFound", "Resource not found.")
        if family != "control":
            self.stats.record(f"{req.method} <unrouted>", error.status, None)
        await _send(send, RENDERERS[family](req, error))


def create_app(world: World | None = None, *, clock: Clock | None = None,
               control_token: str | None = None) -> Emulator:
    return Emulator(world, clock=clock, control_token=control_token)


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Any, response: Response) -> None:
    headers = response.headers
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


class ConnectionDropped(ConnectionResetError):
    """Fault injection: the answer was cut short (`error_rate`'s dropped connection)."""


async def _drop_connection(send: Any) -> NoReturn:
    """Cut the answer short, as a flaky network does: the head promises a body that never comes, then the
    application fails, and an ASGI server can only close the connection; the client reads an incomplete
    answer. In-process (httpx's ASGITransport) the error reaches the caller instead.

    The head says 503, so a client that reads no body (HEAD) still sees a failure, never a success."""
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")]})
    raise ConnectionDropped("emulator dropped the connection (fault injection)")


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
