"""A tenant Partner Center creates, through the emulator: Microsoft's body accepted, the admin password shown
once in the request's result, to the reseller only, then gone."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select, text

from shared.db.models import ProvisioningRequest, RequestSecret
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.microsoft.factory import MicrosoftClients
from shared.pipeline.context import StepContext
from shared.pipeline.rows import StepRow
from shared.settings import get_settings
from shared.tenants.steps import connect_tenant
from tests.api.conftest import Api, build_live_world, new_key


def _run_connect_tenant(request_id: str) -> None:
    """The pipeline's connect_tenant step, committed, with the engine's clients at the emulator."""
    clients = MicrosoftClients(get_settings())
    try:
        with UnitOfWork() as uow:
            req = uow.session.get(ProvisioningRequest, request_id)
            assert req is not None
            connect_tenant(StepContext(uow.session, req, StepRow(req.id, "connect_tenant", 1), get_settings(),
                                       clients, utcnow()))
            uow.commit()
    finally:
        clients.close()


def test_a_new_tenants_admin_password_is_shown_once_to_the_reseller(op: Api, raw: Any, emulator: Any) -> None:
    live = build_live_world(emulator)
    w = live.world
    customer = op.post("/v1/customers", json={"name": "Brand new", "service_provider_id": w.provider_id}).json()
    prefix = "n" + customer["id"].replace("-", "")[:20]
    r = op.put(f"/v1/customers/{customer['id']}/services/azure-ad", json={
        "customer_plan_id": w.customer_plan_id,
        "new_tenant": {"domain": prefix, "company": "Brand New Ltd", "email": "it@brandnew.example",
                       "first_name": "Ada", "last_name": "Lovelace", "phone": "+44 20 7946 0000",
                       "address": {"address_line1": "1 Road", "city": "Leeds", "postal_code": "LS1 1AA",
                                   "country": "GB"}}})
    assert r.status_code == 202, r.text
    request_id = r.json()["id"]
    assert op.get(f"/v1/requests/{request_id}").json()["result"] is None  # nothing created yet
    _run_connect_tenant(request_id)
    # A customer key of that customer sees the tenant, never the password, and does not use it up.
    seen = Api(raw, new_key("customer", customer["id"])).get(f"/v1/requests/{request_id}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["result"]["tenant"]["admin_password"] is None
    # The emulator checked the body as Partner Center does: the tenant exists on the whole domain.
    with UnitOfWork() as uow:
        req = uow.session.get(ProvisioningRequest, request_id)
        assert req is not None
        created = req.context["created_tenant_id"]
    assert emulator.tenant(created)["initial_domain"] == f"{prefix}.onmicrosoft.com"
    first = Api(raw, w.sp_key).get(f"/v1/requests/{request_id}").json()["result"]["tenant"]
    assert first["tenant_id"] == created and first["domain"] == f"{prefix}.onmicrosoft.com"
    assert first["admin_user_name"] == f"admin@{prefix}.onmicrosoft.com" and first["admin_password"]
    again = op.get(f"/v1/requests/{request_id}").json()["result"]["tenant"]
    assert again["admin_password"] is None and again["admin_user_name"] == first["admin_user_name"]
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(RequestSecret).where(RequestSecret.request_id == request_id)) is None
        rows = uow.session.execute(text("SELECT params::text || context::text FROM provisioning_requests "
                                        "WHERE id = :id"), {"id": request_id}).scalar_one()
        audit = uow.session.execute(text("SELECT coalesce(string_agg(detail::text, ' '), '') FROM audit_events "
                                         "WHERE object_id = :id"), {"id": request_id}).scalar_one()
    assert first["admin_password"] not in rows and first["admin_password"] not in audit
