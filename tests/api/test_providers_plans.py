"""Resellers, their services in the guide's order, customer and user plans; audit events."""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from shared.db.models import AuditEvent, ProviderService, ServiceProvider
from shared.db.uow import UnitOfWork
from shared.security import decrypt
from tests.api.conftest import Api, problem_of


def new_provider(op: Api, **over: Any) -> dict[str, Any]:
    body = {"name": f"Reseller {uuid.uuid4().hex[:6]}", "kind": "indirect",
            "partner_center": {"tenant_id": str(uuid.uuid4()), "client_id": "app", "client_secret": "s3cret"}}
    body.update(over)
    r = op.post("/v1/service-providers", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def plans(op: Api) -> tuple[str, str]:
    cp = op.post("/v1/customer-plans", json={"name": f"Standard {uuid.uuid4().hex[:6]}"}).json()
    up = op.post("/v1/user-plans", json={"name": f"Premium {uuid.uuid4().hex[:6]}", "licences": [
        {"sku_part_number": "O365_BUSINESS_PREMIUM", "disabled_service_plans": ["YAMMER_ENTERPRISE"]}]}).json()
    return cp["id"], up["id"]


def test_create_provider_hides_and_encrypts_the_secret(op: Api) -> None:
    sp = new_provider(op)
    assert sp["partner_center"]["client_id"] == "app" and "client_secret" not in str(sp)
    assert sp["kind"] == "indirect" and sp["id"]
    with UnitOfWork() as uow:
        row = uow.session.get(ServiceProvider, sp["id"])
        assert row is not None and b"s3cret" not in row.pc_client_secret_enc
        assert decrypt(row.pc_client_secret_enc) == "s3cret"
        events = uow.session.scalars(select(AuditEvent).where(AuditEvent.object_id == sp["id"])).all()
        assert [e.action for e in events] == ["service_provider.created"] and "s3cret" not in str(events[0].detail)
    assert op.get(f"/v1/service-providers/{sp['id']}").json() == sp
    assert sp["id"] in {p["id"] for p in op.get("/v1/service-providers").json()["items"]}


def test_provider_validation(op: Api) -> None:
    problem_of(op.post("/v1/service-providers", json={"name": "x", "kind": "reseller", "partner_center": {
        "tenant_id": "t", "client_id": "c", "client_secret": "s"}}), 422, "validation_error")
    problem_of(op.post("/v1/service-providers", json={"name": "x"}), 422, "validation_error")


def test_services_in_order(op: Api, published: list[Any]) -> None:
    sp = new_provider(op)
    cp, up = plans(op)
    services = op.get(f"/v1/service-providers/{sp['id']}/services").json()["items"]
    assert [(s["service"], s["state"]) for s in services] == [("azure_ad", "not_provisioned"),
                                                               ("microsoft_online", "not_provisioned")]
    early = op.put(f"/v1/service-providers/{sp['id']}/services/microsoft-online", json={"user_plans": [up]})
    problem_of(early, 409, "service_dependency")
    r = op.put(f"/v1/service-providers/{sp['id']}/services/azure-ad", json={"customer_plans": [cp]})
    assert r.status_code == 202, r.text
    req = r.json()
    assert req["kind"] == "provider.azure_ad" and req["params"] == {"customer_plans": [cp]}
    assert req["service_provider_id"] == sp["id"] and published[-1].id == req["id"]
    problem_of(op.put(f"/v1/service-providers/{sp['id']}/services/azure-ad", json={"customer_plans": [cp]}),
               409, "request_in_progress")
    services = op.get(f"/v1/service-providers/{sp['id']}/services").json()["items"]
    # The plans are linked by the pipeline once Partner Center answered, not at accept time.
    assert services[0] == {"service": "azure_ad", "state": "provisioning", "request_id": req["id"], "plans": []}
    # Still provisioning: Microsoft Online must wait for the pipeline to finish Azure AD.
    problem_of(op.put(f"/v1/service-providers/{sp['id']}/services/microsoft-online", json={"user_plans": [up]}),
               409, "service_dependency")
    _finish(sp["id"], "azure_ad")
    r = op.put(f"/v1/service-providers/{sp['id']}/services/microsoft-online", json={"user_plans": [up]})
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "provider.microsoft_online"
    services = op.get(f"/v1/service-providers/{sp['id']}/services").json()["items"]
    assert services[1]["plans"] == [] and services[1]["state"] == "provisioning"


def test_unknown_plan_ids_are_422_with_index(op: Api) -> None:
    sp = new_provider(op)
    cp, _ = plans(op)
    r = op.put(f"/v1/service-providers/{sp['id']}/services/azure-ad",
               json={"customer_plans": [cp, "00000000-0000-4000-8000-000000000000"]})
    err = problem_of(r, 422, "validation_error")
    assert err["errors"][0]["loc"] == ["body", "customer_plans", 1]


def test_a_reseller_service_needs_at_least_one_plan(op: Api) -> None:
    sp = new_provider(op)
    for path, field in (("azure-ad", "customer_plans"), ("microsoft-online", "user_plans")):
        err = problem_of(op.put(f"/v1/service-providers/{sp['id']}/services/{path}", json={field: []}), 422,
                         "validation_error")
        assert err["errors"][0]["loc"] == ["body", field]
    assert op.get(f"/v1/service-providers/{sp['id']}/services").json()["items"][0]["state"] == "not_provisioned"


def test_reapplying_a_provisioned_service_never_takes_it_down(op: Api, make_world: Any, published: list[Any]) -> None:
    from shared.db.types import utcnow
    from shared.pipeline.finish import fail_request

    w = make_world()
    new_cp, new_up = plans(op)
    r = op.put(f"/v1/service-providers/{w.provider_id}/services/azure-ad", json={"customer_plans": [new_cp]})
    assert r.status_code == 202, r.text
    m = op.put(f"/v1/service-providers/{w.provider_id}/services/microsoft-online", json={"user_plans": [new_up]})
    assert m.status_code == 202, m.text
    services = op.get(f"/v1/service-providers/{w.provider_id}/services").json()["items"]
    # While the requests run: provisioned, with the last good plans; the services point at the new requests.
    assert services == [
        {"service": "azure_ad", "state": "provisioned", "request_id": r.json()["id"], "plans": [w.customer_plan_id]},
        {"service": "microsoft_online", "state": "provisioned", "request_id": m.json()["id"],
         "plans": [w.user_plan_id]}]
    # Customers are served meanwhile: no service_dependency for connecting or enabling plans.
    customer = op.post("/v1/customers", json={"name": "Meanwhile", "service_provider_id": w.provider_id}).json()
    assert op.put(f"/v1/customers/{customer['id']}/services/azure-ad", json={
        "customer_plan_id": w.customer_plan_id, "tenant_id": str(uuid.uuid4())}).status_code == 202
    assert op.put(f"/v1/customers/{w.customer_id}/services/microsoft-online", json={
        "plans": [{"user_plan_id": w.user_plan_id}]}).status_code == 202
    with UnitOfWork() as uow:  # the new Azure AD request fails (say, a rotated secret Partner Center refuses)
        from shared.db.models import ProvisioningRequest

        req = uow.session.get(ProvisioningRequest, r.json()["id"])
        assert req is not None
        fail_request(uow.session, req, "microsoft_auth_failed", "sign-in refused", now=utcnow())
        uow.commit()
    assert op.get(f"/v1/requests/{r.json()['id']}").json()["error_code"] == "microsoft_auth_failed"
    azure = op.get(f"/v1/service-providers/{w.provider_id}/services").json()["items"][0]
    assert (azure["state"], azure["plans"]) == ("provisioned", [w.customer_plan_id])


def _finish(provider_id: str, service: str) -> None:
    with UnitOfWork() as uow:
        row = uow.session.scalar(select(ProviderService).where(ProviderService.service_provider_id == provider_id,
                                                               ProviderService.service == service))
        assert row is not None
        row.state = "provisioned"
        uow.commit()


def test_plans(op: Api) -> None:
    name = f"Plan {uuid.uuid4().hex[:6]}"
    cp = op.post("/v1/customer-plans", json={"name": name, "description": "the usual"})
    assert cp.status_code == 201 and cp.json()["description"] == "the usual"
    problem_of(op.post("/v1/customer-plans", json={"name": name}), 409, "conflict")
    assert cp.json()["id"] in {p["id"] for p in op.get("/v1/customer-plans").json()["items"]}
    up = op.post("/v1/user-plans", json={"name": name, "licences": [
        {"sku_part_number": "SPE_E3"}, {"sku_part_number": "EMS", "disabled_service_plans": ["INTUNE_A"]}]})
    assert up.status_code == 201, up.text
    assert [lic["sku_part_number"] for lic in up.json()["licences"]] == ["SPE_E3", "EMS"]
    assert up.json()["licences"][1]["disabled_service_plans"] == ["INTUNE_A"]
    assert up.json()["id"] in {p["id"] for p in op.get("/v1/user-plans").json()["items"]}
    problem_of(op.post("/v1/user-plans", json={"name": name + "x", "licences": []}), 422, "validation_error")
    problem_of(op.post("/v1/user-plans", json={"name": name + "y", "licences": [
        {"sku_part_number": "A"}, {"sku_part_number": "A"}]}), 422, "validation_error")
    problem_of(op.post("/v1/user-plans", json={"name": name + "z", "licences": [
        {"sku_part_number": "bad sku!"}]}), 422, "validation_error")
