"""Every route dependency, in one place: the caller, the unit of work, the idempotency key, paging."""
from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.schemas.common import ID_PATTERN
from shared.auth.keys import authenticate, cached_principal
from shared.auth.principal import Principal
from shared.db.engine import session_factory
from shared.db.uow import UnitOfWork
from shared.errors import InvalidInput, ServiceError
from shared.idempotency import MAX_KEY_LENGTH, Answer, Idempotency, fingerprint
from shared.paging import DEFAULT_LIMIT, MAX_LIMIT

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer m365p_…`")


class Unauthorized(ServiceError):
    status = 401
    code = "unauthorized"


async def principal(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    if credentials is None:
        raise Unauthorized("send Authorization: Bearer <api key>")
    token = credentials.credentials
    known, who = cached_principal(token)
    if not known:  # a database read, once per key per cache period: off the event loop
        who = await run_in_threadpool(authenticate, token, session_factory())
    if who is None:
        raise Unauthorized("the API key is not valid")
    return who


async def unit_of_work() -> UnitOfWork:
    # Not yet entered: the service function owns the transaction (`with uow:` … `uow.commit()`).
    return UnitOfWork()


async def idempotency(request: Request, who: Annotated[Principal, Depends(principal)],
                      key: Annotated[str | None, Header(
                          alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_LENGTH,
                          pattern=r"^[\x21-\x7e]+$",
                          description="Same key and body: the first answer again. Same key, other body: 409.",
                      )] = None) -> Idempotency:
    body = await request.body() if key else b""
    if not key:
        return Idempotency(who.key_id, None, "")
    # The query is part of what was asked (`?delete_user=true` is another request than `=false`).
    query = urlencode(sorted(request.query_params.multi_items()))
    target = request.url.path + ("?" + query if query else "")
    return Idempotency(who.key_id, key, fingerprint(request.method, target, body))


_known_query: dict[int, frozenset[str]] = {}


async def known_query(request: Request) -> None:
    """422 for a query parameter the route does not take (`?stat=failed` must not silently list everything)
    or one given twice."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    names = _known_query.get(id(route))
    if names is None:
        names = _known_query[id(route)] = frozenset(_query_names(dependant))
    unknown = sorted(set(request.query_params) - names)
    if unknown:
        raise InvalidInput(f"unknown query parameter(s): {', '.join(unknown)}", [
            {"loc": ["query", name], "msg": "not a parameter of this operation", "type": "unknown_parameter"}
            for name in unknown])
    # Every parameter takes one value; FastAPI would silently keep the last of several.
    repeated = sorted({k for k, _ in request.query_params.multi_items()
                       if len(request.query_params.getlist(k)) > 1})
    if repeated:
        raise InvalidInput(f"query parameter(s) given more than once: {', '.join(repeated)}", [
            {"loc": ["query", name], "msg": "give one value", "type": "repeated_parameter"} for name in repeated])


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


PrincipalDep = Annotated[Principal, Depends(principal)]
UowDep = Annotated[UnitOfWork, Depends(unit_of_work)]
IdemDep = Annotated[Idempotency, Depends(idempotency)]
IdPath = Annotated[str, Path(pattern=ID_PATTERN, description="A UUID")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[str | None, Query(max_length=512, pattern=r"^[A-Za-z0-9_-]+$",
                                     description="`next_cursor` of the previous page")]
DEFAULT_PAGE = DEFAULT_LIMIT  # routes' default `limit`


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def answer(result: Answer) -> Response:
    """The service's answer as sent; a replay says so in a header."""
    return json(result.body, result.status, {"Idempotent-Replayed": "true"} if result.replayed else None)
