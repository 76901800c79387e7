"""The HTTP API: `create_app()` builds the FastAPI application (served via commands.apiserver:create_app)."""
from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi

from api import bodies, problems
from api.deps import single_valued_query
from api.fair_use import fair_caller
from api.metrics import MetricsMiddleware
from api.middleware import BodyLimit
from api.publishing import BackgroundPublisher
from api.routes import (
    agreements,
    customer_services,
    customers,
    health,
    notifications,
    plans,
    purchases,
    requests,
    service_providers,
    sync,
    users,
)
from api.schemas.common import Problem
from shared.customers import live
from shared.db.engine import dispose_engine
from shared.observability.logging import configure_logging
from shared.requests import dispatch
from shared.settings import Settings, api_settings_or_exit, get_settings

DESCRIPTION = """Provisioning engine for Microsoft 365 resellers.

Every error is `application/problem+json` (RFC 9457) with a stable `code`. Creating calls accept
`Idempotency-Key`. Work that touches Microsoft answers `202` with a request to follow at
`/v1/requests/{id}`. Objects outside the key's scope answer 404."""

# Users first: its routes are the hot ones, and routes are matched in order.
ROUTERS = (users, requests, customers, customer_services, agreements, sync, notifications, service_providers, plans,
           health, purchases)


# How soon a thread whose database call returned gets the GIL back (Python's default is 5 ms): a
# thread holding a customer's seat lock waits for it, and that customer's other accepts wait behind.
GIL_SWITCH_INTERVAL_S = 0.001


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Few threads: the accept path is CPU-bound Python between short database round trips, and every
    # extra thread adds GIL hand-offs. Scale with processes (`provisioner api --workers`), not threads.
    anyio.to_thread.current_default_thread_limiter().total_tokens = get_settings().api_threads
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    publisher = BackgroundPublisher(dispatch.get_publisher())  # the entry point's; none installed: fails here
    # Everything loaded so far (FastAPI, SQLAlchemy, pydantic, the routes) lives as long as the
    # process: out of the collector's sight, a full collection does not walk it in the middle of a request.
    gc.collect()
    gc.freeze()
    dispatch.set_publisher(publisher)
    try:
        yield
    finally:
        publisher.close()
        if dispatch.get_publisher() is publisher:  # tests may have installed their own meanwhile
            dispatch.set_publisher(publisher.inner)
        live.use_clients(None)
        dispose_engine()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or api_settings_or_exit()  # uvicorn's factory: a bad setting is one line, not a traceback
    configure_logging(json_lines=settings.log_json, level=settings.log_level)
    app = FastAPI(title="m365-provisioner", version="1.0", description=DESCRIPTION, lifespan=_lifespan,
                  docs_url="/docs", redoc_url=None, dependencies=[Depends(single_valued_query)])
    problems.install(app)
    for module in ROUTERS:
        # Every authenticated route is charged to its caller; the operations routes are not authenticated.
        app.include_router(module.router, dependencies=[] if module is health else [Depends(fair_caller)])
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(MetricsMiddleware)  # outermost: counts the 413s too
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with every error answer described as the problem+json it is."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    schemas.update(bodies.schemas())  # the bodies validated off the event loop (api/bodies.py)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    for path, operations in doc.get("paths", {}).items():
        for op in operations.values():
            answers = op.setdefault("responses", {})
            if "422" in answers:
                answers["422"] = problems.problem_entry(422)
            if not path.startswith("/v1"):
                continue
            for status in (401, 404, 413, 422, 429, 503):
                answers.setdefault(str(status), problems.problem_entry(status))
            if "requestBody" in op:
                answers.setdefault("400", problems.problem_entry(400))
            if any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", [])):
                answers.setdefault("409", problems.problem_entry(409, "Conflict; `idempotency_conflict` when the "
                                                                      "Idempotency-Key was used for another request"))
    app.openapi_schema = doc
    return doc
