"""/v1/customers/{c}/purchase-policy, the reseller's default, /v1/customers/{c}/purchases."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db.models import AuditEvent, ProvisioningRequest, Purchase, UserPlanLicence
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.requests.service import create_request
from tests.api.conftest import Api, build_live_world, build_world, problem_of
from tests.api.test_microsoft_online import _offered_plan

ON = {"enabled": True, "max_units_per_day": 10, "max_units_per_order": 5}
OFF = {"enabled": False, "max_units_per_day": None, "max_units_per_order": None}


def _urls(world: Any) -> tuple[str, str]:
    return (f"/v1/customers/{world.customer_id}/purchase-policy",
            f"/v1/service-providers/{world.provider_id}/purchase-policy")


def test_policy_defaults_off_then_the_resellers_default_then_the_customers_own(op: Api, api_env: Any) -> None:
    world = build_world(kind="direct")
    c, sp = _urls(world)
    assert op.get(c).json() == {**OFF, "source": "default"}
    r = op.put(sp, json={"enabled": True, "max_units_per_day": 3, "max_units_per_order": None})
    assert r.status_code == 200, r.text
    assert op.get(c).json() == {"enabled": True, "max_units_per_day": 3, "max_units_per_order": None,
                                "source": "service_provider"}
    own = op.put(c, json=ON)
    assert own.status_code == 200 and own.json() == {**ON, "source": "customer"}
    assert op.get(c).json() == own.json() and op.get(sp).json()["max_units_per_day"] == 3
    with UnitOfWork() as uow:
        actions = set(uow.session.scalars(select(AuditEvent.action).where(
            AuditEvent.object_id.in_([world.customer_id, world.provider_id]))))
    assert {"customer.purchase_policy.updated", "service_provider.purchase_policy.updated"} <= actions


def test_only_managers_set_policies_and_only_for_direct_resellers(op: Api, raw: Any, api_env: Any) -> None:
    world = build_world(kind="direct")
    c, sp = _urls(world)
    customer = Api(raw, world.customer_key)
    assert customer.get(c).status_code == 200
    problem_of(customer.put(c, json=ON), 403, "forbidden")
    problem_of(customer.put(sp, json=ON), 404, "not_found")  # a customer key does not see its reseller
    assert Api(raw, world.sp_key).put(c, json=ON).status_code == 200
    indirect = build_world()
    ic, isp = _urls(indirect)
    problem_of(op.put(ic, json=ON), 409, "not_a_direct_reseller")
    problem_of(op.put(isp, json=ON), 409, "not_a_direct_reseller")
    assert op.get(ic).json()["enabled"] is False
    problem_of(Api(raw, world.sp_key).get(ic), 404, "not_found")


def test_bad_policies_are_refused_with_the_field_named(op: Api, api_env: Any) -> None:
    c, _ = _urls(build_world(kind="direct"))
    for body, field in [({**ON, "max_units_per_day": 0}, "max_units_per_day"),
                        ({**ON, "max_units_per_order": -1}, "max_units_per_order"),
                        ({"max_units_per_day": 1, "max_units_per_order": 1}, "enabled"),
                        ({**ON, "surprise": 1}, "surprise")]:
        err = problem_of(op.put(c, json=body), 422, "validation_error")
        assert err["errors"][0]["loc"][:2] == ["body", field], (body, err)


def test_turning_the_policy_on_resumes_the_requests_it_blocked(op: Api, published: list[RequestRef],
                                                               api_env: Any) -> None:
    world = build_world(kind="direct")
    c, _ = _urls(world)
    with UnitOfWork() as uow:
        req = create_request(uow.session, kind=kinds.USER_PROVISION, service_provider_id=world.provider_id,
                             customer_id=world.customer_id, params={})
        req.state, req.blocked_reason = kinds.BLOCKED, "purchase_limit"
        rid = req.id
        uow.commit()
    assert op.put(c, json={**ON, "enabled": False}).status_code == 200
    assert published == []  # still off: stays blocked
    assert op.put(c, json=ON).status_code == 200
    assert [r.id for r in published] == [rid]
    with UnitOfWork() as uow:
        row = uow.session.get(ProvisioningRequest, rid)
        assert row is not None and row.state == kinds.QUEUED


def test_purchases_are_listed_newest_first_for_keys_in_scope(op: Api, raw: Any, api_env: Any) -> None:
    world = build_world(kind="direct")
    url = f"/v1/customers/{world.customer_id}/purchases"
    assert op.get(url).json() == {"items": []}
    with UnitOfWork() as uow:
        uow.session.add(Purchase(customer_id=world.customer_id, sku_part_number="O365_BUSINESS_ESSENTIALS", units=2,
                                 from_quantity=1, to_quantity=3, request_ids=["r1", "r2"], ms_request_id="m1",
                                 order_id="m1", state="visible", expected_total=3, created_at=utcnow()))
        uow.commit()
    items = Api(raw, world.customer_key).get(url).json()["items"]
    assert [(p["from_quantity"], p["to_quantity"], p["request_ids"], p["state"]) for p in items] == [
        (1, 3, ["r1", "r2"], "visible")]
    problem_of(Api(raw, build_world().sp_key).get(url), 404, "not_found")
    assert 'provisioner_seats_bought_total{sku="O365_BUSINESS_ESSENTIALS"}' in raw.get("/metrics").text


def test_a_user_plan_licence_may_name_its_offer(op: Api, api_env: Any) -> None:
    body = {"name": "Premium on order", "licences": [
        {"sku_part_number": "SPB", "offer_id": "CFQ7TTC0LCHC:0002:CFQ7TTC0NXP6"},
        {"sku_part_number": "O365_BUSINESS_ESSENTIALS"}]}
    r = op.post("/v1/user-plans", json=body)
    assert r.status_code == 201, r.text
    assert [(lic["sku_part_number"], lic["offer_id"]) for lic in r.json()["licences"]] == [
        ("SPB", "CFQ7TTC0LCHC:0002:CFQ7TTC0NXP6"), ("O365_BUSINESS_ESSENTIALS", None)]
    bad = op.post("/v1/user-plans", json={"name": "Bad offer", "licences": [
        {"sku_part_number": "SPB", "offer_id": "not an offer"}]})
    assert problem_of(bad, 422, "validation_error")["errors"][0]["loc"][:3] == ["body", "licences", 0]


def test_a_direct_reseller_may_enable_a_plan_whose_sku_it_will_order(op: Api, emulator: Any) -> None:
    for kind, status in (("indirect", 409), ("direct", 202)):
        live = build_live_world(emulator, mca_signed=True, kind=kind)
        w = live.world
        plan = _offered_plan(w, "SPB")
        with UnitOfWork() as uow:
            lic = uow.session.scalar(select(UserPlanLicence).where(UserPlanLicence.user_plan_id == plan))
            assert lic is not None
            lic.offer_id = "CFQ7TTC0LCHC:0002:CFQ7TTC0NXP6"
            uow.commit()
        r = op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online", json={"plans": [{"user_plan_id": plan}]})
        assert r.status_code == status, (kind, r.text)
        if status == 409:
            assert r.json()["code"] == "sku_not_in_tenant"
