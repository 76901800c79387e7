"""/healthz (the process answers), /readyz (database and broker reachable), /metrics (Prometheus)."""
from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from api.deps import NO_QUERY, json
from api.metrics import exposition
from api.problems import problem, problem_entry
from shared import readiness

router = APIRouter(tags=["operations"], dependencies=[NO_QUERY])


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers (no dependencies)")
async def healthz() -> Response:
    return json({"status": "ok"})


@router.get("/readyz", response_model=Ready, responses={503: problem_entry(503, "Database or broker unreachable")},
            summary="Readiness: database and broker reachable")
def readyz() -> Response:
    checks = readiness.check()
    if all(v == "ok" for v in checks.values()):
        return json({"status": "ready", "checks": checks})
    failing = ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
    return problem(503, "not_ready", failing, instance="/readyz", checks=checks)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Metrics"}})
def metrics() -> Response:
    body, content_type = exposition()
    return Response(body, media_type=content_type)
