"""The slice of OData query syntax the engine sends: $filter (eq, ne, startswith, and), $select, paging."""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import ApiError
from ..http import Request

DEFAULT_PAGE = 100
MAX_PAGE = 999
_CONDITION = re.compile(
    r"\s*(?:startswith\(\s*(?P<sw_prop>[\w/]+)\s*,\s*'(?P<sw_val>(?:[^']|'')*)'\s*\)"
    r"|(?P<prop>[\w/]+)\s+(?P<op>eq|ne)\s+(?:'(?P<str>(?:[^']|'')*)'|(?P<lit>true|false|null|[\w.:-]+)))\s*",
    re.IGNORECASE,
)
_AND = re.compile(r"and\s", re.IGNORECASE)
_PREFER_PAGE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)")

Predicate = Callable[[dict[str, Any]], bool]


class Filter:
    """A parsed $filter; `equals` exposes `prop eq 'x'` terms so callers can use an index."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self.predicates: list[Predicate] = []
        self.equals: dict[str, str] = {}
        pos = 0
        while True:
            m = _CONDITION.match(expression, pos)
            if m is None:
                raise unsupported()
            self.predicates.append(self._predicate(m))
            pos = m.end()
            if pos == len(expression):
                break
            joiner = _AND.match(expression, pos)
            if joiner is None:
                raise unsupported()
            pos = joiner.end()

    def _predicate(self, m: re.Match[str]) -> Predicate:
        if m["sw_prop"]:
            path, prefix = m["sw_prop"].split("/"), m["sw_val"].replace("''", "'").lower()
            return lambda obj: str(_get(obj, path) or "").lower().startswith(prefix)
        path = m["prop"].split("/")
        if m["str"] is not None:
            value: Any = m["str"].replace("''", "'")
            if m["op"].lower() == "eq":
                self.equals[m["prop"]] = value
        else:
            value = {"true": True, "false": False, "null": None}.get(m["lit"].lower(), m["lit"])
        wanted = value.lower() if isinstance(value, str) else value
        negate = m["op"].lower() == "ne"

        def matches(obj: dict[str, Any]) -> bool:
            found = _get(obj, path)
            same = (found.lower() if isinstance(found, str) else found) == wanted
            return same != negate

        return matches

    def __call__(self, obj: dict[str, Any]) -> bool:
        return all(p(obj) for p in self.predicates)


def _get(obj: Any, path: list[str]) -> Any:
    for part in path:
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def unsupported() -> ApiError:
    return ApiError(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified.")


def parse_filter(req: Request) -> Filter | None:
    expression = req.query.get("$filter")
    return Filter(expression) if expression else None


def parse_select(req: Request) -> tuple[str, ...] | None:
    raw = req.query.get("$select")
    if not raw:
        return None
    return tuple(dict.fromkeys(p.strip() for p in raw.split(",") if p.strip()))


def page_size(req: Request, default: int = DEFAULT_PAGE) -> int:
    """$top wins, else `Prefer: odata.maxpagesize=N`; Graph caps directory pages at 999."""
    top = req.query.get("$top")
    if top is not None:
        if not top.isdigit() or not 1 <= int(top) <= MAX_PAGE:
            raise ApiError(400, "Request_BadRequest",
                           f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive.")
        return int(top)
    prefer = req.header(b"prefer")
    if prefer:
        m = _PREFER_PAGE.search(prefer)
        if m:
            return max(1, min(int(m.group(1)), MAX_PAGE))
    return default


def context(req: Request, entity_set: str, select: tuple[str, ...] | None, *, entity: bool = False) -> str:
    shape = f"{entity_set}({','.join(select)})" if select else entity_set
    return f"{req.root}/v1.0/$metadata#{shape}{'/$entity' if entity else ''}"


def expired_page_token() -> ApiError:
    return ApiError(400, "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included in your request.")
