"""Provisioning one user: the checks in order, seats held, hard limits, re-provisioning, deprovisioning."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import select

from shared.db.models import SeatReservation, User, UserService
from shared.db.uow import UnitOfWork
from shared.security import decrypt
from tests.api.conftest import SKU, Api, World, problem_of, user_body


def _user(op: Api, w: World, **over: Any) -> str:
    r = op.post(f"/v1/customers/{w.customer_id}/users", json=user_body(**over))
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def _provision(op: Api, user_id: str, plan: str, **extra: Any) -> Any:
    return op.put(f"/v1/users/{user_id}/services/microsoft-online", json={"user_plan_id": plan, **extra})


def test_accepts_with_an_encrypted_password_and_a_held_seat(op: Api, world: World, published: list[Any]) -> None:
    u = _user(op, world)
    r = _provision(op, u, world.user_plan_id)
    assert r.status_code == 202, r.text
    body = r.json()
    with UnitOfWork() as uow:
        service = uow.session.scalar(select(UserService).where(UserService.user_id == u))
        assert service is not None and service.state == "provisioning" and service.request_id == body["request"]["id"]
        assert service.temp_password_enc and decrypt(service.temp_password_enc) == body["temporary_password"]
        seats = uow.session.scalars(select(SeatReservation).where(SeatReservation.user_id == u)).all()
        assert [(s.sku_part_number, s.state) for s in seats] == [(SKU, "held")]
    assert body["request"]["params"] == {"user_plan_id": world.user_plan_id}
    assert [p.id for p in published] == [body["request"]["id"]]
    shown = op.get(f"/v1/users/{u}").json()["microsoft_online"]
    assert shown == {"state": "provisioning", "user_plan_id": world.user_plan_id, "request_id": body["request"]["id"]}


def test_checks_in_order(op: Api, raw: Any, make_world: Any) -> None:
    # All five fail at once; each fix reveals the next, in the documented order.
    w = make_world(connected=False, mca=False, plan_enabled=False, seats=0)
    u = _user(op, w)
    problem_of(_provision(op, u, w.user_plan_id), 409, "tenant_not_connected")
    w = make_world(mca=False, plan_enabled=False, seats=0)
    u = _user(op, w)
    problem_of(_provision(op, u, w.user_plan_id), 409, "mca_not_signed")
    w = make_world(plan_enabled=False, seats=0)
    u = _user(op, w)
    problem_of(_provision(op, u, w.user_plan_id), 409, "plan_not_enabled")
    w = make_world(hard_limit=0, seats=0)
    u = _user(op, w)
    problem_of(_provision(Api(raw, w.customer_key), u, w.user_plan_id), 409, "plan_limit_reached")
    w = make_world(seats=0)
    u = _user(op, w)
    err = problem_of(_provision(op, u, w.user_plan_id), 409, "no_free_licences")
    assert err["skus"] == [{"sku_part_number": SKU, "free": 0, "needed": 1}]


def test_direct_resellers_skip_the_seat_check(op: Api, make_world: Any) -> None:
    w = make_world(kind="direct", seats=0)
    assert _provision(op, _user(op, w), w.user_plan_id).status_code == 202


def test_seats_count_reservations(op: Api, make_world: Any) -> None:
    w = make_world(seats=3, consumed=1)
    users = [_user(op, w) for _ in range(3)]
    assert [_provision(op, u, w.user_plan_id).status_code for u in users[:2]] == [202, 202]
    problem_of(_provision(op, users[2], w.user_plan_id), 409, "no_free_licences")
    lic = op.get(f"/v1/customers/{w.customer_id}/licences")  # stale rows refresh live: no emulator here
    assert lic.status_code in (200, 503, 502)


def test_hard_limit_counts_pending_and_provisioned(op: Api, raw: Any, make_world: Any) -> None:
    w = make_world(hard_limit=2)
    own = Api(raw, w.customer_key)  # the limit binds what the customer provisions itself
    users = [_user(op, w) for _ in range(4)]
    assert _provision(op, users[0], w.user_plan_id).status_code == 202  # the reseller's user counts too
    with UnitOfWork() as uow:  # the pipeline finished the first one
        svc = uow.session.scalar(select(UserService).where(UserService.user_id == users[0]))
        assert svc is not None
        svc.state = "provisioned"
        uow.commit()
    assert _provision(own, users[1], w.user_plan_id).status_code == 202
    err = problem_of(_provision(own, users[2], w.user_plan_id), 409, "plan_limit_reached")
    assert err["hard_limit"] == 2 and err["in_use"] == 2
    # Reseller and operator keys may go past it.
    assert _provision(Api(raw, w.sp_key), users[2], w.user_plan_id).status_code == 202
    assert _provision(op, users[3], w.user_plan_id).status_code == 202


def test_reprovisioning_does_not_hold_a_second_seat(op: Api, make_world: Any, published: list[Any]) -> None:
    w = make_world(seats=1)
    u = _user(op, w)
    first = _provision(op, u, w.user_plan_id).json()["request"]
    problem_of(_provision(op, u, w.user_plan_id), 409, "request_in_progress")
    with UnitOfWork() as uow:  # the first request succeeded: licence assigned, seat consumed
        s = uow.session
        svc = s.scalar(select(UserService).where(UserService.user_id == u))
        user = s.get(User, u)
        assert svc is not None and user is not None
        svc.state = "provisioned"
        user.licences = [SKU]
        for seat in s.scalars(select(SeatReservation).where(SeatReservation.request_id == first["id"])):
            seat.state = "consumed"
        from shared.db.models import ProvisioningRequest
        s.get(ProvisioningRequest, first["id"]).state = "succeeded"  # type: ignore[union-attr]
        uow.commit()
    again = _provision(op, u, w.user_plan_id)  # e.g. to fix the UPN after a domain was verified
    assert again.status_code == 202, again.text
    assert again.json()["request"]["id"] != first["id"]
    with UnitOfWork() as uow:
        held = uow.session.scalars(select(SeatReservation).where(
            SeatReservation.request_id == again.json()["request"]["id"])).all()
        assert held == []


def test_concurrent_accepts_cannot_both_take_the_last_seat(op: Api, make_world: Any) -> None:
    w = make_world(seats=3)
    users = [_user(op, w) for _ in range(8)]
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda u: _provision(op, u, w.user_plan_id).status_code, users))
    assert sorted(codes) == [202] * 3 + [409] * 5


def test_concurrent_accepts_respect_the_hard_limit(op: Api, raw: Any, make_world: Any) -> None:
    w = make_world(kind="direct", hard_limit=2)
    own = Api(raw, w.customer_key)
    users = [_user(op, w) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda u: _provision(own, u, w.user_plan_id).status_code, users))
    assert sorted(codes) == [202] * 2 + [409] * 4


def test_deprovision(op: Api, world: World, published: list[Any]) -> None:
    u = _user(op, world)
    problem_of(op.delete(f"/v1/users/{u}/services/microsoft-online"), 409, "conflict")
    req = _provision(op, u, world.user_plan_id).json()["request"]
    problem_of(op.delete(f"/v1/users/{u}/services/microsoft-online"), 409, "request_in_progress")
    op.post(f"/v1/requests/{req['id']}/cancel")
    r = op.delete(f"/v1/users/{u}/services/microsoft-online", params={"delete_user": "true"})
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "user.deprovision" and r.json()["params"] == {"delete_user": True}
    assert op.get(f"/v1/users/{u}").json()["microsoft_online"]["state"] == "deprovisioning"
    assert published[-1].id == r.json()["id"]


def test_cancelled_provisioning_frees_its_place_under_the_hard_limit(op: Api, raw: Any, make_world: Any) -> None:
    w = make_world(hard_limit=1)
    own = Api(raw, w.customer_key)
    a, b = _user(op, w), _user(op, w)
    req = _provision(own, a, w.user_plan_id).json()["request"]
    problem_of(_provision(own, b, w.user_plan_id), 409, "plan_limit_reached")
    assert op.post(f"/v1/requests/{req['id']}/cancel").status_code == 200
    assert _provision(own, b, w.user_plan_id).status_code == 202


def test_with_seats_to_spare_concurrent_accepts_share_the_lock(op: Api, make_world: Any) -> None:
    w = make_world(seats=100_000)
    users = [_user(op, w) for _ in range(12)]
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda u: _provision(op, u, w.user_plan_id).status_code, users))
    assert codes == [202] * 12
    with UnitOfWork() as uow:
        held = uow.session.scalars(select(SeatReservation).where(SeatReservation.user_id.in_(users))).all()
        assert len(held) == 12


def test_near_the_margin_accepts_switch_to_the_exclusive_lock(op: Api, make_world: Any) -> None:
    from shared.users import checks

    with UnitOfWork() as uow:
        margin = checks._safety_margin(uow.session)
    assert margin >= 10  # PostgreSQL's max_connections
    w = make_world(seats=margin + 2, consumed=margin - 2)  # 4 free: every accept must be exact
    users = [_user(op, w) for _ in range(10)]
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda u: _provision(op, u, w.user_plan_id).status_code, users))
    assert sorted(codes) == [202] * 4 + [409] * 6
