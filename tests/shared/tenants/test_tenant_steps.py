"""connect_tenant and check_gdap: existing or new tenant, domains stored, GDAP required."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.db.models import TenantConnection
from shared.microsoft.errors import AuthFailed
from shared.pipeline.outcomes import Blocked, Done, StepFailed, Wait
from shared.requests import kinds
from shared.tenants.steps import check_gdap, connect_tenant, sync_tenant


def _fresh_customer(world):
    return world.b.customer(world.provider, connected=False)


def test_an_existing_tenant_is_connected_with_its_domains(world, db):
    customer = _fresh_customer(world)
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=customer, params={"tenant_id": world.tenant.tenant_id})
    assert isinstance(connect_tenant(world.ctx(req, "connect_tenant")), Done)
    assert isinstance(check_gdap(world.ctx(req, "check_gdap")), Done)
    conn = db.scalar(select(TenantConnection).where(TenantConnection.customer_id == customer.id))
    assert conn.state == "connected" and conn.initial_domain == "contoso.onmicrosoft.com"
    assert conn.verified_domains == ["contoso.com", "contoso.onmicrosoft.com"]


def test_without_an_active_gdap_relationship_the_request_is_blocked(world):
    world.tenant.gdap = "expired"
    customer = _fresh_customer(world)
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=customer, params={"tenant_id": world.tenant.tenant_id})
    connect_tenant(world.ctx(req, "connect_tenant"))
    outcome = check_gdap(world.ctx(req, "check_gdap"))
    assert isinstance(outcome, Blocked) and outcome.reason == "gdap_missing"
    assert world.provider.name in outcome.message and "(expired)" in outcome.message
    assert "Fix: Ask the customer to approve a GDAP relationship" in outcome.message


def test_an_unknown_tenant_fails_clearly(world):
    customer = _fresh_customer(world)
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=customer, params={"tenant_id": "nope"})
    with pytest.raises(StepFailed) as failed:
        connect_tenant(world.ctx(req, "connect_tenant"))
    assert failed.value.code == "tenant_not_found"
    assert world.provider.name in failed.value.message and "reseller relationship" in failed.value.message


def test_a_new_tenant_is_created_once_and_waited_for_until_it_accepts_sign_in(world):
    customer = _fresh_customer(world)
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=customer,
                          params={"new_tenant": {"domain": "fabrikam", "company": "Fabrikam", "email": "a@b.c",
                                                 "first_name": "A", "last_name": "B", "address": {
                                                     "address_line1": "1 Road", "city": "Leeds",
                                                     "postal_code": "LS1", "country": "GB"}}})
    world.ms.fail["domains"] = [AuthFailed("sign-in refused", status=401)]
    assert isinstance(connect_tenant(world.ctx(req, "connect_tenant")), Wait)
    assert isinstance(connect_tenant(world.ctx(req, "connect_tenant")), Done)
    assert world.ms.calls["create_customer"] == 1


def test_a_sync_request_runs_the_sync_engine_once_under_its_own_id(world, monkeypatch):
    from shared.sync import engine
    from shared.sync.runs import SyncRunResult

    calls = []

    def fake_run_sync(customer_id, **kw):
        calls.append((customer_id, kw["run_id"], kw["trigger"]))
        return SyncRunResult(customer_id, kw["run_id"], "succeeded", created=2)

    monkeypatch.setattr(engine, "run_sync", fake_run_sync)
    req = world.b.request(kinds.CUSTOMER_SYNC, customer=world.customer)
    assert "2 created" in sync_tenant(world.ctx(req, "sync")).note
    assert calls == [(world.customer.id, req.id, "manual")]
    monkeypatch.setattr(engine, "run_sync", lambda cid, **kw: SyncRunResult(cid, kw["run_id"], "failed", error="x"))
    with pytest.raises(StepFailed):
        sync_tenant(world.ctx(req, "sync"))
