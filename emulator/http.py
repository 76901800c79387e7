"""A small ASGI request/response pair and router: the emulator skips a framework to keep GETs cheap."""
from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from .clock import Clock
from .errors import ApiError

if TYPE_CHECKING:
    from .app import Emulator

JSON = b"application/json; charset=utf-8"
Handler = Callable[["Emulator", "Request"], Awaitable["Response"]]


class Request:
    __slots__ = ("_headers", "_query", "body", "clock", "method", "params", "path", "scope", "tenant_id")

    def __init__(self, scope: MutableMapping[str, Any], params: dict[str, str], clock: Clock) -> None:
        self.scope = scope
        self.clock = clock  # the emulator's, for the timestamps error bodies carry
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.params = params
        self.body = b""
        self.tenant_id: str | None = None  # set once known, for per-tenant stats
        self._query: dict[str, str] | None = None
        self._headers: dict[bytes, bytes] | None = None

    def header(self, name: bytes) -> str | None:
        if self._headers is None:
            self._headers = dict(self.scope["headers"])
        value = self._headers.get(name)
        return value.decode("latin-1") if value is not None else None

    @property
    def query(self) -> dict[str, str]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = dict(parse_qsl(raw, keep_blank_values=True))
        return self._query

    def json(self) -> Any:
        try:
            return orjson.loads(self.body) if self.body else {}
        except orjson.JSONDecodeError:
            raise ApiError(400, "BadRequest", "Unable to read JSON request payload.") from None

    def json_object(self) -> dict[str, Any]:
        data = self.json()
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "The request body must be a JSON object.")
        return data

    @property
    def root(self) -> str:
        """The scheme and host the caller used, so links lead back to this emulator whatever its name."""
        host = self.header(b"host")
        if not host:
            server = self.scope.get("server") or ("127.0.0.1", 443)
            host = f"{server[0]}:{server[1]}"
        return f"https://{host}"


class Response:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int = 200, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
                 content_type: bytes | None = JSON) -> None:
        self.status = status
        self.body = body
        self.headers = headers or []
        if content_type and body:
            self.headers.append((b"content-type", content_type))


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None,
                  content_type: bytes = JSON) -> Response:
    extra = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Response(status, orjson.dumps(data), extra, content_type)


def empty(status: int = 204, headers: dict[str, str] | None = None) -> Response:
    return Response(status, b"", [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()])


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    family: str  # login | graph | partner_center | exchange | control: decides error shapes and faults
    pattern: re.Pattern[str]

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


def route(method: str, template: str, handler: Handler, family: str) -> Route:
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
    return Route(method, template, handler, family, re.compile(f"^{regex}$"))


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self._static: dict[tuple[str, str], Route] = {}
        self._dynamic: dict[str, list[Route]] = {}
        for r in routes:
            if "{" in r.template:
                self._dynamic.setdefault(r.method, []).append(r)
            else:
                self._static[(r.method, r.template)] = r

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        found = self._static.get((method, path))
        if found is not None:
            return found, {}
        for candidate in self._dynamic.get(method, ()):
            m = candidate.pattern.match(path)
            if m is not None:
                return candidate, m.groupdict()
        return None

    def allows_other_method(self, method: str, path: str) -> bool:
        methods = {m for m, _ in self._static} | set(self._dynamic)
        return any(self.match(other, path) for other in methods - {method})
