"""Bulk: up to BULK_MAX_USERS users in one call, validated as a whole, checks counted across the batch."""
from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from shared.db.models import ProvisioningRequest, RequestStep, SeatReservation, User, UserService
from shared.db.uow import UnitOfWork
from shared.security import decrypt
from tests.api.conftest import Api, World, problem_of, user_body


def _count(model: Any, *where: Any) -> int:
    with UnitOfWork() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_bulk_accepts_every_user_with_a_request_and_password(op: Api, make_world: Any,
                                                             published: list[Any]) -> None:
    w = make_world(seats=50)
    users = [user_body() for _ in range(20)]
    r = op.post(f"/v1/customers/{w.customer_id}/users:bulk", json={"user_plan_id": w.user_plan_id, "users": users})
    assert r.status_code == 202, r.text
    body = r.json()
    assert len(body["requests"]) == len(body["items"]) == 20
    assert [i["user"]["upn"] for i in body["items"]] == [u["upn"] for u in users]
    assert all(i["request"]["user_id"] == i["user"]["id"] and len(i["temporary_password"]) >= 16
               for i in body["items"])
    assert {p.id for p in published} == {q["id"] for q in body["requests"]}
    ids = [i["user"]["id"] for i in body["items"]]
    assert _count(SeatReservation, SeatReservation.user_id.in_(ids), SeatReservation.state == "held") == 20
    assert _count(RequestStep, RequestStep.request_id.in_([q["id"] for q in body["requests"]])) == 20 * 7
    with UnitOfWork() as uow:
        svc = uow.session.scalar(select(UserService).where(UserService.user_id == ids[0]))
        assert svc is not None and decrypt(svc.temp_password_enc or b"") == body["items"][0]["temporary_password"]
        req = uow.session.get(ProvisioningRequest, body["requests"][0]["id"])
        assert req is not None and req.params == {"user_plan_id": w.user_plan_id} and req.state == "queued"
    got = op.get(f"/v1/requests/{body['requests'][0]['id']}").json()
    assert got["steps"] == body["requests"][0]["steps"]
    user = op.get(f"/v1/users/{ids[0]}").json()
    assert user == body["items"][0]["user"]


def test_bulk_seats_and_limits_count_across_the_batch(op: Api, raw: Any, make_world: Any) -> None:
    w = make_world(seats=3)
    users = [user_body() for _ in range(4)]
    problem_of(op.post(f"/v1/customers/{w.customer_id}/users:bulk",
                       json={"user_plan_id": w.user_plan_id, "users": users}), 409, "no_free_licences")
    w = make_world(hard_limit=3)
    own = Api(raw, w.customer_key)  # the hard limit binds the customer's own provisioning
    problem_of(own.post(f"/v1/customers/{w.customer_id}/users:bulk",
                        json={"user_plan_id": w.user_plan_id, "users": users}), 409, "plan_limit_reached")
    assert _count(User, User.customer_id == w.customer_id) == 0
    # The reseller may go past it.
    reseller = Api(raw, w.sp_key)
    assert reseller.post(f"/v1/customers/{w.customer_id}/users:bulk",
                         json={"user_plan_id": w.user_plan_id, "users": users}).status_code == 202


def test_bulk_is_all_or_nothing(op: Api, world: World) -> None:
    taken = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body()).json()["upn"]
    users = [user_body(), user_body(taken), user_body()]
    err = problem_of(op.post(f"/v1/customers/{world.customer_id}/users:bulk",
                             json={"user_plan_id": world.user_plan_id, "users": users}), 409, "upn_conflict")
    assert [e["loc"] for e in err["errors"]] == [["body", "users", 1, "upn"]]
    dup = user_body()
    err = problem_of(op.post(f"/v1/customers/{world.customer_id}/users:bulk",
                             json={"user_plan_id": world.user_plan_id, "users": [dup, user_body(), dup]}),
                     422, "validation_error")
    assert [e["loc"] for e in err["errors"]] == [["body", "users", 2, "upn"]]
    bad = [user_body(), user_body(upn="nope"), user_body(), user_body(usage_location="ZZ")]
    err = problem_of(op.post(f"/v1/customers/{world.customer_id}/users:bulk",
                             json={"user_plan_id": world.user_plan_id, "users": bad}), 422, "validation_error")
    assert sorted({tuple(e["loc"][:3]) for e in err["errors"]}) == [("body", "users", 1), ("body", "users", 3)]
    assert _count(User, User.customer_id == world.customer_id) == 1


def test_bulk_needs_a_plan_per_user_and_respects_the_cap(op: Api, world: World, api_env: Any) -> None:
    problem_of(op.post(f"/v1/customers/{world.customer_id}/users:bulk", json={"users": [user_body()]}), 422,
               "validation_error")
    problem_of(op.post(f"/v1/customers/{world.customer_id}/users:bulk", json={"users": []}), 422,
               "validation_error")
    from shared.settings import reset_settings
    api_env.setenv("BULK_MAX_USERS", "2")
    reset_settings()
    try:
        err = problem_of(op.post(f"/v1/customers/{world.customer_id}/users:bulk", json={
            "user_plan_id": world.user_plan_id, "users": [user_body() for _ in range(3)]}), 422, "validation_error")
        assert err["errors"][0]["loc"] == ["body", "users"]
    finally:
        api_env.delenv("BULK_MAX_USERS")
        reset_settings()


def test_bulk_of_1000_takes_a_few_statements_not_one_per_user(op: Api, make_world: Any,
                                                              published: list[Any]) -> None:
    from sqlalchemy import event

    from shared.db.engine import get_engine

    w = make_world(seats=5000)
    users = [user_body(f"bulk{i:04d}@contoso.com", aliases=[f"alias{i:04d}@contoso.com"]) for i in range(1000)]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(get_engine(), "before_cursor_execute", count)
    try:
        r = op.post(f"/v1/customers/{w.customer_id}/users:bulk",
                    json={"user_plan_id": w.user_plan_id, "users": users})
    finally:
        event.remove(get_engine(), "before_cursor_execute", count)
    assert r.status_code == 202, r.text[:300]
    assert len(r.json()["items"]) == 1000 and len(published) == 1000
    # Set-based rows: a per-user round trip would be thousands of statements. How fast it is, is a
    # figure (bench/api_accept.py), not a timed assertion.
    assert 0 < len(statements) < 100, len(statements)
