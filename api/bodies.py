"""Large request bodies validated off the event loop.

FastAPI validates a declared body model inside the event loop: a 1,000-user bulk body is milliseconds of
pydantic during which no other request of the process moves (not even /healthz). A route taking such a
body reads the raw bytes instead and calls `parsed` (pydantic in a worker thread); `documented(model)` keeps
the body in the OpenAPI document, and the errors are FastAPI's own (the same 400/422 problem+json).
"""
from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from shared.errors import InvalidInput
from shared.settings import get_settings

M = TypeVar("M", bound=BaseModel)

_documented: dict[str, type[BaseModel]] = {}


def documented(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route reading `model` itself: the request body, as FastAPI would describe it."""
    _documented[model.__name__] = model
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def schemas() -> dict[str, Any]:
    """The components/schemas entries of the documented bodies (and the models they use)."""
    found: dict[str, Any] = {}
    for name, model in _documented.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[name] = schema
    return found


async def parsed(request: Request, model: type[M]) -> M:
    """The body as `model`, validated in a worker thread; RequestValidationError as FastAPI raises it."""
    raw = await request.body()
    return await run_in_threadpool(validate, model, request.headers.get("content-type", ""), raw)


def validate(model: type[M], content_type: str, raw: bytes) -> M:
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    if not _is_json(content_type):  # FastAPI hands such a body to the model as bytes, which no model takes
        raise RequestValidationError([{"type": "model_attributes_type", "loc": ("body",), "input": None,
                                       "msg": "Input should be a valid dictionary or object to extract fields from"}])
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                                       "input": {}, "ctx": {"error": exc.msg}}]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) \
            from None


def _is_json(content_type: str) -> bool:
    kind = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = kind.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def check_bulk_size(n: int) -> None:
    """BULK_MAX_USERS, for every route taking users by the batch (bulk, onboard): 422 naming the limit."""
    cap = get_settings().bulk_max_users
    if n > cap:
        raise InvalidInput(f"at most {cap} users per call", [
            {"loc": ["body", "users"], "msg": f"{n} users; the limit is {cap}", "type": "too_long"}])
