"""Customers: create, list (paged), read; connecting the tenant; enabling plans; onboarding."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from shared.db.models import (
    AuditEvent,
    Customer,
    CustomerService,
    PlanEnablement,
    ProviderService,
    ProvisioningRequest,
    TenantConnection,
)
from shared.db.uow import UnitOfWork
from tests.api.conftest import Api, World, build_world, problem_of, user_body


def test_create_list_and_read(op: Api, world: World) -> None:
    names = [f"Cust {uuid.uuid4().hex[:6]} {i}" for i in range(5)]
    made = [op.post("/v1/customers", json={"name": n, "service_provider_id": world.provider_id}) for n in names]
    assert all(r.status_code == 201 for r in made)
    first = made[0].json()
    assert first["name"] == names[0] and first["tenant"] is None and first["id"]
    seen, cursor = [], None
    while True:
        page = op.get("/v1/customers", params={"service_provider_id": world.provider_id, "limit": 2,
                                                **({"cursor": cursor} if cursor else {})}).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(seen) == {r.json()["id"] for r in made} | {world.customer_id}
    assert len(seen) == len(set(seen))
    detail = op.get(f"/v1/customers/{world.customer_id}").json()
    assert detail["tenant"]["state"] == "connected" and detail["tenant"]["tenant_id"] == world.tenant_id
    assert {s["service"] for s in detail["services"]} == {"azure_ad", "microsoft_online"}
    prefix = op.get("/v1/customers", params={"name": names[0][:11]}).json()["items"]
    assert names[0] in [c["name"] for c in prefix]
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(AuditEvent.action).where(AuditEvent.object_id == first["id"])) == \
            "customer.created"


def test_create_needs_a_visible_provider(op: Api) -> None:
    problem_of(op.post("/v1/customers", json={"name": "x", "service_provider_id": str(uuid.uuid4())}), 404,
               "not_found")
    problem_of(op.post("/v1/customers", json={"name": "", "service_provider_id": str(uuid.uuid4())}), 422,
               "validation_error")


def _new_customer(op: Api, w: World) -> str:
    return op.post("/v1/customers", json={"name": "New", "service_provider_id": w.provider_id}).json()["id"]  # type: ignore[no-any-return]


def test_connect_existing_tenant(op: Api, world: World, published: list[Any]) -> None:
    c = _new_customer(op, world)
    tenant = str(uuid.uuid4())
    r = op.put(f"/v1/customers/{c}/services/azure-ad", json={"customer_plan_id": world.customer_plan_id,
                                                             "tenant_id": tenant})
    assert r.status_code == 202, r.text
    req = r.json()
    assert req["kind"] == "customer.azure_ad" and req["params"]["tenant_id"] == tenant
    assert req["customer_id"] == c and req["service_provider_id"] == world.provider_id
    assert published[-1].id == req["id"]
    with UnitOfWork() as uow:
        conn = uow.session.scalar(select(TenantConnection).where(TenantConnection.customer_id == c))
        assert conn is not None and conn.state == "connecting" and conn.tenant_id == tenant
        assert uow.session.get(Customer, c).customer_plan_id == world.customer_plan_id  # type: ignore[union-attr]
    problem_of(op.put(f"/v1/customers/{c}/services/azure-ad", json={"customer_plan_id": world.customer_plan_id,
                                                                     "tenant_id": tenant}), 409, "request_in_progress")


def test_connect_a_new_tenant(op: Api, world: World) -> None:
    c = _new_customer(op, world)
    r = op.put(f"/v1/customers/{c}/services/azure-ad", json={
        "customer_plan_id": world.customer_plan_id,
        "new_tenant": {"domain": "NewCo123", "company": "New Co", "email": "it@newco.example", "first_name": "Ada",
                       "last_name": "Lovelace", "address": {"address_line1": "1 Road", "city": "Leeds",
                                                            "postal_code": "LS1", "country": "GB"}}})
    assert r.status_code == 202, r.text
    new = r.json()["params"]["new_tenant"]
    assert new["domain"] == "newco123" and new["company"] == "New Co" and new["address"]["country"] == "GB"
    # Partner Center needs the billing contact and a physical address: refused here, not in the pipeline.
    for missing in ("first_name", "last_name", "address"):
        body = {"customer_plan_id": world.customer_plan_id, "new_tenant": {
            k: v for k, v in {**new, "domain": "other1"}.items() if k != missing}}
        err = problem_of(op.put(f"/v1/customers/{_new_customer(op, world)}/services/azure-ad", json=body), 422,
                         "validation_error")
        assert err["errors"][0]["loc"][-1] == missing


def test_connect_checks(op: Api, make_world: Any) -> None:
    w = make_world(services=False)
    c = _new_customer(op, w)
    body = {"customer_plan_id": w.customer_plan_id, "tenant_id": str(uuid.uuid4())}
    problem_of(op.put(f"/v1/customers/{c}/services/azure-ad", json=body), 409, "service_dependency")
    w = make_world()
    c = _new_customer(op, w)
    other_plan = build_world().customer_plan_id
    problem_of(op.put(f"/v1/customers/{c}/services/azure-ad", json={**body, "customer_plan_id": other_plan}),
               409, "plan_not_enabled")
    taken = {"customer_plan_id": w.customer_plan_id, "tenant_id": w.tenant_id}
    problem_of(op.put(f"/v1/customers/{c}/services/azure-ad", json=taken), 409, "conflict")
    problem_of(op.put(f"/v1/customers/{c}/services/azure-ad", json={"customer_plan_id": w.customer_plan_id}),
               422, "validation_error")
    both = {**body, "new_tenant": {"domain": "x", "company": "x", "email": "a@b.com"}}
    problem_of(op.put(f"/v1/customers/{c}/services/azure-ad", json=both), 422, "validation_error")
    elsewhere = {"customer_plan_id": w.customer_plan_id, "tenant_id": str(uuid.uuid4())}
    problem_of(op.put(f"/v1/customers/{w.customer_id}/services/azure-ad", json=elsewhere), 409, "conflict")


def test_enable_plans_checks_in_order(op: Api, make_world: Any) -> None:
    body = lambda w: {"plans": [{"user_plan_id": w.user_plan_id, "hard_limit": 3}]}  # noqa: E731
    w = make_world(connected=False)
    problem_of(op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online", json=body(w)), 409,
               "tenant_not_connected")
    w = make_world(mca=False)
    with UnitOfWork() as uow:
        row = uow.session.scalar(select(ProviderService).where(ProviderService.service_provider_id == w.provider_id,
                                                               ProviderService.service == "microsoft_online"))
        assert row is not None
        row.state = "provisioning"
        uow.commit()
    problem_of(op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online", json=body(w)), 409,
               "service_dependency")
    w = make_world(mca=False)
    problem_of(op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online",
                      json={"plans": [{"user_plan_id": build_world().user_plan_id}]}), 409, "plan_not_enabled")
    problem_of(op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online", json=body(w)), 409,
               "mca_not_signed")


def test_enable_plans(op: Api, make_world: Any, published: list[Any]) -> None:
    w = make_world(plan_enabled=False)
    r = op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online",
               json={"plans": [{"user_plan_id": w.user_plan_id, "hard_limit": 3}]})
    assert r.status_code == 202, r.text
    req = r.json()
    assert req["kind"] == "customer.microsoft_online"
    assert req["params"] == {"plans": [{"user_plan_id": w.user_plan_id, "hard_limit": 3}]}
    with UnitOfWork() as uow:
        pe = uow.session.scalar(select(PlanEnablement).where(PlanEnablement.customer_id == w.customer_id))
        assert pe is not None and pe.enabled is False and pe.hard_limit == 3
        svc = uow.session.scalar(select(CustomerService).where(CustomerService.customer_id == w.customer_id,
                                                               CustomerService.service == "microsoft_online"))
        assert svc is not None and svc.state == "provisioning" and svc.request_id == req["id"]
    problem_of(op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online",
                      json={"plans": [{"user_plan_id": w.user_plan_id}, {"user_plan_id": w.user_plan_id}]}),
               422, "validation_error")
    problem_of(op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online",
                      json={"plans": [{"user_plan_id": w.user_plan_id, "hard_limit": -1}]}), 422,
               "validation_error")


def test_onboard_creates_the_parent_and_queued_children(op: Api, make_world: Any, published: list[Any]) -> None:
    w = make_world(connected=False, plan_enabled=False)
    c = w.customer_id
    tenant = str(uuid.uuid4())
    users = [user_body(user_plan_id=w.user_plan_id) for _ in range(3)]
    r = op.post(f"/v1/customers/{c}/onboard", json={
        "tenant_id": tenant, "customer_plan_id": w.customer_plan_id,
        "plans": [{"user_plan_id": w.user_plan_id, "hard_limit": 5}], "users": users})
    assert r.status_code == 202, r.text
    body = r.json()
    parent = body["request"]
    assert parent["kind"] == "customer.onboard" and parent["params"]["tenant_id"] == tenant
    assert len(body["requests"]) == 3 and all(q["parent_id"] == parent["id"] for q in body["requests"])
    assert all(q["state"] == "queued" and q["kind"] == "user.provision" for q in body["requests"])
    assert all(len(i["temporary_password"]) >= 16 for i in body["items"])
    assert [i["user"]["upn"] for i in body["items"]] == [u["upn"] for u in users]
    assert [p.id for p in published] == [parent["id"]]  # children start when the parent has succeeded
    with UnitOfWork() as uow:
        children = uow.session.scalars(select(ProvisioningRequest).where(
            ProvisioningRequest.parent_id == parent["id"])).all()
        assert len(children) == 3 and all(ch.params.get("user_plan_id") == w.user_plan_id for ch in children)
        assert all("temporary_password" not in str(ch.params) for ch in children)


def test_onboard_checks(op: Api, make_world: Any) -> None:
    w = make_world(connected=False, plan_enabled=False)
    base = {"tenant_id": str(uuid.uuid4()), "customer_plan_id": w.customer_plan_id,
            "plans": [{"user_plan_id": w.user_plan_id, "hard_limit": 1}]}
    two = [user_body(user_plan_id=w.user_plan_id) for _ in range(2)]
    problem_of(op.post(f"/v1/customers/{w.customer_id}/onboard", json={**base, "users": two}), 409,
               "plan_limit_reached")
    other = build_world().user_plan_id
    problem_of(op.post(f"/v1/customers/{w.customer_id}/onboard",
                       json={**base, "users": [user_body(user_plan_id=other)]}), 409, "plan_not_enabled")
    problem_of(op.post(f"/v1/customers/{w.customer_id}/onboard", json={**base, "users": [user_body()]}), 422,
               "validation_error")
    dup = user_body(user_plan_id=w.user_plan_id)
    err = problem_of(op.post(f"/v1/customers/{w.customer_id}/onboard", json={
        **base, "plans": [{"user_plan_id": w.user_plan_id}], "users": [dup, dup]}), 422, "validation_error")
    assert err["errors"][0]["loc"] == ["body", "users", 1, "upn"]


def test_a_contact_stored_in_partner_centers_shape_still_reads(op: Api, world: World) -> None:
    # Rows a background agreement read wrote before the step stored the engine's shape.
    from shared.db.models import Agreement

    with UnitOfWork() as uow:
        row = uow.session.scalar(select(Agreement).where(Agreement.customer_id == world.customer_id))
        assert row is not None
        row.primary_contact = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.com",
                               "phoneNumber": None}
        uow.commit()
    detail = op.get(f"/v1/customers/{world.customer_id}")
    assert detail.status_code == 200, detail.text
    assert detail.json()["agreement"]["primary_contact"] == {"first_name": "Ada", "last_name": "Lovelace",
                                                             "email": "ada@contoso.com", "phone": None}
