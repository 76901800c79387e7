"""/healthz (the process answers), /readyz (database and broker reachable), /metrics (Prometheus)."""
from __future__ import annotations

import hmac
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field

from api.deps import NO_QUERY, json
from api.metrics import exposition
from api.problems import problem, problem_entry
from shared import readiness
from shared.settings import get_settings, metrics_closed

log = logging.getLogger("api")
router = APIRouter(tags=["operations"], dependencies=[NO_QUERY])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, Literal["ok", "failing"]] | None = Field(
        default=None, description="Only when failing: each dependency, `ok` or `failing` (the why is in the log)")


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers (no dependencies)")
async def healthz() -> Response:
    return json({"status": "ok"})


_NOT_READY = {"description": "Database or broker unreachable",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}}}


@router.get("/readyz", response_model=Ready, response_model_exclude_none=True, responses={503: _NOT_READY},
            summary="Readiness: database and broker reachable")
def readyz() -> Response:
    checks = readiness.check()
    if all(v == "ok" for v in checks.values()):
        return json({"status": "ok"})
    # The exception text names hosts, users and databases: the log has it, the unauthenticated answer not.
    for name, why in checks.items():
        if why != "ok":
            log.warning("readyz: %s failing: %s", name, why)
    return json({"status": "failing", "checks": {k: "ok" if v == "ok" else "failing" for k, v in checks.items()}},
                503)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics (Bearer METRICS_TOKEN when it is set)",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"},
                       401: problem_entry(401, "the bearer token is not METRICS_TOKEN, or none is set in "
                                                       "production (`unauthorized`)")})
def metrics(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> Response:
    settings = get_settings()
    token = settings.metrics_token
    if metrics_closed(settings):
        return problem(401, "unauthorized", "set METRICS_TOKEN: /metrics is served only behind it in production",
                       instance="/metrics", headers={"WWW-Authenticate": "Bearer"})
    if token:
        scheme, _, given = (authorization or "").partition(" ")
        # Constant time: the comparison does not tell how much of a guess was right.
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            return problem(401, "unauthorized", "send Authorization: Bearer <METRICS_TOKEN>", instance="/metrics",
                           headers={"WWW-Authenticate": "Bearer"})
    body, content_type = exposition()
    return Response(body, media_type=content_type)
