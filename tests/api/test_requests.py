"""Requests: list with filters and paging, detail with steps and the failed step, retry and cancel."""
from __future__ import annotations

from typing import Any

from shared.db.models import ProvisioningRequest
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from tests.api.conftest import Api, World, problem_of, user_body


def _accepted(op: Api, w: World, n: int) -> list[dict[str, Any]]:
    r = op.post(f"/v1/customers/{w.customer_id}/users:bulk",
                json={"user_plan_id": w.user_plan_id, "users": [user_body() for _ in range(n)]})
    return r.json()["requests"]  # type: ignore[no-any-return]


def _fail(request_id: str, step: str = "assign_licences") -> None:
    with UnitOfWork() as uow:
        req = uow.session.get(ProvisioningRequest, request_id)
        assert req is not None
        for s in req.steps:
            if s.name == step:
                s.state, s.attempts, s.error_code, s.error_message = "failed", 3, "no_free_licences", "no seat"
                s.started_at = s.finished_at = utcnow()
                break
            s.state = "succeeded"
        req.state, req.current_step, req.error_code = "failed", step, "no_free_licences"
        req.error_message, req.finished_at = f"{step}: no seat", utcnow()
        uow.commit()


def test_list_filters_and_pages_newest_first(op: Api, world: World) -> None:
    made = _accepted(op, world, 5)
    _fail(made[0]["id"])
    items = op.get("/v1/requests", params={"customer_id": world.customer_id, "limit": 2}).json()
    assert len(items["items"]) == 2 and items["next_cursor"]
    seen, cursor = [], None
    while True:
        page = op.get("/v1/requests", params={"customer_id": world.customer_id, "limit": 2,
                                              **({"cursor": cursor} if cursor else {})}).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert {r["id"] for r in seen} == {r["id"] for r in made}
    assert [r["created_at"] for r in seen] == sorted((r["created_at"] for r in seen), reverse=True)
    failed = op.get("/v1/requests", params={"customer_id": world.customer_id, "state": "failed"}).json()["items"]
    assert [r["id"] for r in failed] == [made[0]["id"]]
    kind = op.get("/v1/requests", params={"customer_id": world.customer_id, "kind": "user.deprovision"}).json()
    assert kind["items"] == []
    by_user = op.get("/v1/requests", params={"user_id": made[1]["user_id"]}).json()["items"]
    assert [r["id"] for r in by_user] == [made[1]["id"]]
    problem_of(op.get("/v1/requests", params={"state": "exploded"}), 422, "validation_error")
    problem_of(op.get("/v1/requests", params={"kind": "user.explode"}), 422, "validation_error")


def test_detail_says_which_step_failed_and_why(op: Api, world: World) -> None:
    req = _accepted(op, world, 1)[0]
    _fail(req["id"])
    got = op.get(f"/v1/requests/{req['id']}").json()
    assert got["state"] == "failed" and got["failed_step"] == "assign_licences"
    step = next(s for s in got["steps"] if s["name"] == "assign_licences")
    assert step["attempts"] == 3 and step["error_code"] == "no_free_licences" and step["finished_at"]
    assert got["error_message"] == "assign_licences: no seat"


def test_retry_and_cancel(op: Api, world: World, published: list[Any]) -> None:
    req = _accepted(op, world, 1)[0]
    problem_of(op.post(f"/v1/requests/{req['id']}/retry"), 409, "request_not_retryable")
    _fail(req["id"])
    published.clear()
    r = op.post(f"/v1/requests/{req['id']}/retry")
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "queued" and r.json()["current_step"] == "assign_licences"
    assert [(p.id, p.from_step) for p in published] == [(req["id"], "assign_licences")]
    c = op.post(f"/v1/requests/{req['id']}/cancel")
    assert c.status_code == 200 and c.json()["state"] == "cancelled"
    assert all(s["state"] in ("succeeded", "skipped") for s in c.json()["steps"])
    problem_of(op.post(f"/v1/requests/{req['id']}/cancel"), 409, "request_not_cancellable")
    problem_of(op.post(f"/v1/requests/{req['id']}/retry"), 409, "request_not_retryable")


def test_the_documented_kinds_are_the_engine_kinds() -> None:
    from typing import get_args

    from api.schemas.requests import Kind
    from shared.requests import kinds

    assert set(get_args(Kind)) == set(kinds.STEPS)
