"""The guide's rules at the API: the customer's plans read back, SKUs the tenant lacks, passwords, the result."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db.models import ProviderUserPlan, ProvisioningRequest, UserService
from shared.db.uow import UnitOfWork
from tests.api.conftest import Api, World, build_live_world, build_world, problem_of, user_body
from tests.builders import Builder, Licence


def _user(op: Api, w: World) -> str:
    r = op.post(f"/v1/customers/{w.customer_id}/users", json=user_body())
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _offered_plan(w: World, *parts: str) -> str:
    """A user plan the reseller offers, granting these SKUs."""
    with UnitOfWork() as uow:
        plan = Builder(uow.session).user_plan([Licence(p) for p in parts])
        uow.session.add(ProviderUserPlan(service_provider_id=w.provider_id, user_plan_id=plan.id))
        uow.commit()
        return plan.id


def test_the_customer_s_plans_read_back_with_limits_use_and_seats(op: Api, raw: Any, make_world: Any) -> None:
    w = make_world(seats=5, consumed=1, hard_limit=3)
    users = [_user(op, w) for _ in range(2)]
    for u in users:
        assert op.put(f"/v1/users/{u}/services/microsoft-online", json={"user_plan_id": w.user_plan_id}).status_code \
            == 202
    own = Api(raw, w.customer_key)  # the customer sees its own plans and limits (self-service)
    r = own.get(f"/v1/customers/{w.customer_id}/services/microsoft-online")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "provisioned"
    [plan] = body["plans"]
    assert (plan["user_plan_id"], plan["hard_limit"], plan["in_use"], plan["free_seats"]) == (
        w.user_plan_id, 3, 2, 2)  # 5 seats, 1 consumed, 2 held for the two pending users
    assert plan["name"]
    assert Api(raw, w.sp_key).get(f"/v1/customers/{w.customer_id}/services/microsoft-online").json() == body
    other = build_world()
    problem_of(Api(raw, other.customer_key).get(f"/v1/customers/{w.customer_id}/services/microsoft-online"),
               404, "not_found")


def test_a_customer_without_the_service_reads_pending_and_no_plans(op: Api, make_world: Any) -> None:
    w = make_world(plan_enabled=False)
    assert op.get(f"/v1/customers/{w.customer_id}/services/microsoft-online").json() == {"state": "pending",
                                                                                          "plans": []}


def test_a_plan_whose_sku_the_tenant_lacks_is_refused_when_enabled(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator, mca_signed=True)
    w = live.world
    e3 = _offered_plan(w, "SPE_E3")
    err = problem_of(op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online",
                            json={"plans": [{"user_plan_id": w.user_plan_id}, {"user_plan_id": e3}]}),
                     409, "sku_not_in_tenant")
    assert err["skus"] == ["SPE_E3"] and err["user_plan_ids"] == [e3] and "SPE_E3" in err["detail"]
    # The tenant's own SKU is read live and passes.
    r = op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online",
               json={"plans": [{"user_plan_id": w.user_plan_id}]})
    assert r.status_code == 202, r.text


def test_the_answer_says_when_the_password_applies_and_a_reset_can_be_asked(op: Api, world: World) -> None:
    u = _user(op, world)
    first = op.put(f"/v1/users/{u}/services/microsoft-online", json={"user_plan_id": world.user_plan_id})
    assert first.status_code == 202, first.text
    assert first.json()["temporary_password"] and first.json()["temporary_password_applies"] == "if_created"
    assert "reset_password" not in first.json()["request"]["params"]
    with UnitOfWork() as uow:  # the first one finished: the account exists and holds its licence
        req = uow.session.get(ProvisioningRequest, first.json()["request"]["id"])
        assert req is not None
        req.state = "succeeded"
        req.context = {"result": {"user": "created", "password": "set"}, "user_created": True}
        svc = uow.session.scalar(select(UserService).where(UserService.user_id == u))
        assert svc is not None
        svc.state = "provisioned"
        uow.commit()
    done = op.get(f"/v1/requests/{first.json()['request']['id']}").json()
    assert done["result"] == {"user": "created", "password": "set"} and "context" not in done
    reset = op.put(f"/v1/users/{u}/services/microsoft-online",
                   json={"user_plan_id": world.user_plan_id, "reset_password": True})
    assert reset.status_code == 202, reset.text
    assert reset.json()["temporary_password_applies"] == "always"
    assert reset.json()["request"]["params"]["reset_password"] is True
    assert reset.json()["request"]["result"] is None  # not known before ensure_user ran


def test_the_openapi_document_shows_the_new_shapes(op: Api) -> None:
    doc = op.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert set(schemas["UserProvisionResult"]["properties"]) == {"user", "password"}
    assert "result" in schemas["RequestPublic"]["properties"]
    assert "reset_password" in schemas["ProvisionUpdate"]["properties"]
    assert "temporary_password_applies" in schemas["ProvisionAccepted"]["properties"]
    get = doc["paths"]["/v1/customers/{customer_id}/services/microsoft-online"]["get"]
    ref = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("MicrosoftOnlineCustomerPublic")
    assert set(schemas["EnabledPlanPublic"]["properties"]) == {"user_plan_id", "name", "hard_limit", "in_use",
                                                               "free_seats"}
    assert "context" not in schemas["RequestPublic"]["properties"]
