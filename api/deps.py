"""Every route dependency, in one place: the caller, the unit of work, the idempotency key, the query's shape."""
from __future__ import annotations

from collections import Counter
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import Depends, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.schemas.common import ID_PATTERN, NoQuery
from shared.auth.keys import authenticate, cached_principal
from shared.auth.principal import Principal
from shared.db.engine import session_factory
from shared.db.uow import UnitOfWork
from shared.errors import InvalidInput, ServiceError
from shared.idempotency import MAX_KEY_LENGTH, Answer, Idempotency, fingerprint

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


async def single_valued_query(request: Request) -> None:
    """422 for a query parameter given more than once: each takes one value, and the query models would
    silently keep the last of several."""
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = sorted(name for name, n in counts.items() if n > 1)
    if repeated:
        raise InvalidInput(f"query parameter(s) given more than once: {', '.join(repeated)}", [
            {"loc": ["query", name], "msg": "give one value", "type": "repeated_parameter"} for name in repeated])


async def no_query(query: Annotated[NoQuery, Query()]) -> None:
    """For routes without query parameters: the empty model refuses whatever is given (422 naming it)."""


PrincipalDep = Annotated[Principal, Depends(principal)]
UowDep = Annotated[UnitOfWork, Depends(unit_of_work)]
IdemDep = Annotated[Idempotency, Depends(idempotency)]
IdPath = Annotated[str, Path(pattern=ID_PATTERN, description="A UUID")]
# A route without query parameters declares it (on the route or its router): `dependencies=[NO_QUERY]`.
NO_QUERY = Depends(no_query)


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def answer(result: Answer) -> Response:
    """The service's answer as sent; a replay says so in a header."""
    return json(result.body, result.status, {"Idempotent-Replayed": "true"} if result.replayed else None)
