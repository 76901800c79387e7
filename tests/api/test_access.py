"""A reseller's credentials (rotated, never echoed) and the live access checks, against the emulator."""
from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared.db.models import ProvisioningRequest, ServiceProvider
from shared.db.uow import UnitOfWork
from shared.requests import kinds
from shared.security import decrypt
from tests.api.conftest import Api, build_live_world, build_world, problem_of

USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
LICENSE_ADMIN = "4d6ac14f-3453-41d0-bef9-a3e0c569773a"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"


@pytest.fixture
def live(emulator: Any) -> Any:
    return build_live_world(emulator)


def _checks(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in body["checks"]}


def _patch_tenant(emulator: Any, tenant_id: str, **changes: Any) -> None:
    emulator._control.patch(f"/_emulator/tenants/{tenant_id}", json=changes).raise_for_status()


def test_rotating_credentials_stores_them_encrypted_and_never_echoes_them(op: Api, raw: Any, live: Any,
                                                                          published: list[Any]) -> None:
    sp = live.world.provider_id
    with UnitOfWork() as uow:  # a request the pipeline blocked on the old secret
        req = live_request(uow, live)
        req.state, req.blocked_reason = kinds.BLOCKED, "partner_credentials_invalid"
        uow.commit()
        blocked_id = req.id
    secret, token = "rotated-" + uuid.uuid4().hex, "rt-" + uuid.uuid4().hex
    r = op.post(f"/v1/service-providers/{sp}/credentials", json={"client_secret": secret, "refresh_token": token})
    assert r.status_code == 200, r.text
    assert secret not in r.text and token not in r.text
    body = r.json()
    assert body["id"] == sp and body["partner_center"]["has_refresh_token"] is True
    assert body["resumed_request_ids"] == [blocked_id] and [p.id for p in published] == [blocked_id]
    with UnitOfWork() as uow:
        row = uow.session.get(ServiceProvider, sp)
        assert row is not None and secret.encode() not in row.pc_client_secret_enc
        assert decrypt(row.pc_client_secret_enc) == secret and decrypt(row.pc_refresh_token_enc or b"") == token
        assert uow.session.get(ProvisioningRequest, blocked_id).state == kinds.QUEUED  # type: ignore[union-attr]

    own = Api(raw, live.world.sp_key)  # a reseller rotates its own
    assert own.post(f"/v1/service-providers/{sp}/credentials", json={"client_secret": "again-" + secret}
                    ).status_code == 200
    other = Api(raw, build_world().sp_key)
    problem_of(other.post(f"/v1/service-providers/{sp}/credentials", json={"client_secret": "x" * 20}), 404,
               "not_found")
    customer = Api(raw, live.world.customer_key)
    problem_of(customer.post(f"/v1/service-providers/{sp}/credentials", json={"client_secret": "x" * 20}), 404,
               "not_found")
    problem_of(op.post(f"/v1/service-providers/{sp}/credentials", json={}), 422, "validation_error")


def live_request(uow: UnitOfWork, live: Any) -> ProvisioningRequest:
    from shared.requests.service import create_request

    return create_request(uow.session, kind=kinds.CUSTOMER_SYNC, service_provider_id=live.world.provider_id,
                          customer_id=live.world.customer_id)


def test_health_of_a_working_reseller_lists_each_check_and_its_tenants(op: Api, live: Any) -> None:
    r = op.get(f"/v1/service-providers/{live.world.provider_id}/health")
    assert r.status_code == 200, r.text
    body = r.json()
    checks = _checks(body)
    assert {n: checks[n]["status"] for n in ("sign_in", "partner_center", "gdap_read")} == dict.fromkeys(
        ("sign_in", "partner_center", "gdap_read"), "ok")
    assert checks["refresh_token"]["status"] == "warning" and "provisioner partner consent" in checks[
        "refresh_token"]["fix"]
    assert body["ok"] is True and body["tenants_total"] == 1
    [tenant] = body["tenants"]
    assert tenant["tenant_id"] == live.tenant["tenant_id"] and _checks(tenant)["consent"]["status"] == "ok"
    assert {r["template_id"] for r in tenant["gdap"]["roles"]} == {USER_ADMIN, LICENSE_ADMIN, EXCHANGE_ADMIN}


def test_health_names_a_wrong_secret_and_its_fix_without_the_secret(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator, client_secret="not-the-secret-value")
    body = op.get(f"/v1/service-providers/{live.world.provider_id}/health").json()
    sign_in = _checks(body)["sign_in"]
    assert sign_in["status"] == "failed" and "AADSTS7000215" in sign_in["detail"]
    assert "POST /v1/service-providers/{id}/credentials" in sign_in["fix"]
    assert body["ok"] is False and "not-the-secret-value" not in str(body)


def test_customer_access_reports_missing_consent_roles_and_expiry_with_fixes(op: Api, emulator: Any,
                                                                              live: Any) -> None:
    c, tenant = live.world.customer_id, live.tenant["tenant_id"]
    ok = op.get(f"/v1/customers/{c}/access")
    assert ok.status_code == 200, ok.text
    assert ok.json()["ok"] is True and _checks(ok.json())["gdap_expiry"]["status"] == "ok"

    _patch_tenant(emulator, tenant, consented_apps=[], gdap="expiring", gdap_roles=[EXCHANGE_ADMIN])
    body = op.get(f"/v1/customers/{c}/access").json()
    checks = _checks(body)
    assert checks["consent"]["status"] == "failed" and "PUT /v1/customers/{id}/services/azure-ad" in checks[
        "consent"]["fix"]
    assert checks["role_users"]["status"] == "failed" and checks["role_licences"]["status"] == "failed"
    assert checks["role_aliases"]["status"] == "ok"
    assert {(m["name"], m["template_id"], m["work"]) for m in body["gdap"]["missing"]} == {
        ("User Administrator", USER_ADMIN, "users"), ("License Administrator", LICENSE_ADMIN, "licences")}
    assert checks["gdap_expiry"]["status"] == "warning" and "extend" in checks["gdap_expiry"]["detail"]
    assert all(ch["fix"] for ch in body["checks"] if ch["status"] != "ok")
    assert body["ok"] is False

    _patch_tenant(emulator, tenant, gdap="none")
    assert _checks(op.get(f"/v1/customers/{c}/access").json())["gdap"]["fix"].startswith("Ask the customer")


def test_access_is_scoped_and_needs_a_tenant(op: Api, raw: Any, emulator: Any, live: Any) -> None:
    other = Api(raw, build_world().sp_key)
    problem_of(other.get(f"/v1/customers/{live.world.customer_id}/access"), 404, "not_found")
    problem_of(other.get(f"/v1/service-providers/{live.world.provider_id}/health"), 404, "not_found")
    assert Api(raw, live.world.sp_key).get(f"/v1/customers/{live.world.customer_id}/access").status_code == 200
    unconnected = build_live_world(emulator, connected=False)
    problem_of(op.get(f"/v1/customers/{unconnected.world.customer_id}/access"), 409, "tenant_not_connected")
