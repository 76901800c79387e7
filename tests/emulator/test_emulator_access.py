"""Access to customer tenants as Microsoft grants it: CPV consent (and its propagation), GDAP roles, device code."""
from __future__ import annotations

import ssl
import threading
import time
from typing import Any

import httpx
import msal
import pytest

from emulator import persistence
from emulator.world import World as EmulatorWorld

from .emulator_world import EXCHANGE, GRAPH, PARTNER_CENTER, World, new_user

GRAPH_APP = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP = "00000002-0000-0ff1-ce00-000000000000"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
LICENSE_ADMIN = "4d6ac14f-3453-41d0-bef9-a3e0c569773a"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"


def _http(world: World) -> httpx.Client:
    http = httpx.Client(verify=ssl.create_default_context(cafile=world.emulator.ca_path))
    world.clients.append(http)
    return http


def _app_token(world: World, tenant_id: str, resource: str = GRAPH) -> dict[str, Any]:
    """msal's answer, from a fresh app each time (msal caches a refusal inside the app instance)."""
    app = msal.ConfidentialClientApplication(world.client_id, client_credential=world.client_secret,
                                             authority=f"{world.emulator.url}/{tenant_id}",
                                             instance_discovery=False, http_client=_http(world))
    return dict(app.acquire_token_for_client(scopes=[f"{resource}/.default"]))


def _consent(world: World, tenant_id: str, grants: tuple[str, ...] = (GRAPH_APP, EXCHANGE_APP)) -> httpx.Response:
    body = {"applicationId": world.client_id,
            "applicationGrants": [{"enterpriseApplicationId": g, "scope": "Directory.ReadWrite.All"} for g in grants]}
    return world.partner_center().post(f"/v1/customers/{tenant_id}/applicationconsents", json=body)


def _fabrikam(world: World, **spec: Any) -> str:
    """A second tenant; without `consented_apps` in the seed no app is consented there."""
    tenant = world.add_tenant(company_name="Fabrikam", initial_domain="fabrikam.onmicrosoft.com",
                              domains=[{"name": "fabrikam.example", "verified": True}], **spec)
    assert tenant["consented_apps"] == spec.get("consented_apps", [])
    return str(tenant["tenant_id"])


def test_an_app_without_consent_gets_aadsts700016_and_consent_is_granted_once(world: World) -> None:
    tenant_id = _fabrikam(world)
    refused = _app_token(world, tenant_id)
    assert refused["error"] == "unauthorized_client" and refused["error_codes"] == [700016], refused
    assert f"Application with identifier '{world.client_id}' was not found" in refused["error_description"]
    assert "access_token" in _app_token(world, world.partner_tenant)  # its own tenant needs no consent

    first = _consent(world, tenant_id)
    assert first.status_code == 201 and first.json()["applicationId"] == world.client_id
    again = _consent(world, tenant_id)
    assert again.status_code == 409 and again.json()["errorName"] == "ApplicationConsentAlreadyExists"
    assert world.emulator.stats()["consents"] == 1
    seen = world.emulator.tenant(tenant_id)
    assert seen["consented_apps"] == [world.client_id]
    assert seen["consents"][0]["granted_at"] and sorted(seen["consents"][0]["grants"]) == [EXCHANGE_APP, GRAPH_APP]
    assert "access_token" in _app_token(world, tenant_id)

    assert world.partner_center().delete(
        f"/v1/customers/{tenant_id}/applicationconsents/{world.client_id}").status_code == 204
    assert _app_token(world, tenant_id)["error_codes"] == [700016]


def test_consent_propagates_after_consent_delay(world: World) -> None:
    world.emulator.set_faults(consent_delay_s=1.5)
    tenant_id = _fabrikam(world)
    assert _consent(world, tenant_id).status_code == 201
    assert _app_token(world, tenant_id)["error_codes"] == [700016]  # granted, not yet in effect
    consent = world.emulator.tenant(tenant_id)["consents"][0]
    assert consent["effective_at"] > consent["granted_at"]
    time.sleep(1.6)
    assert "access_token" in _app_token(world, tenant_id)


def test_a_seed_makes_a_pending_consent_take_effect_now(world: World) -> None:
    world.emulator.set_faults(consent_delay_s=3600)
    tenant_id = _fabrikam(world)
    assert _consent(world, tenant_id).status_code == 201
    assert _app_token(world, tenant_id)["error_codes"] == [700016]
    world.control().patch(f"/_emulator/tenants/{tenant_id}", json={"consented_apps": [world.client_id]})
    assert "access_token" in _app_token(world, tenant_id)


def test_a_token_for_an_api_the_consent_did_not_grant_is_aadsts65001(world: World) -> None:
    tenant_id = _fabrikam(world)
    assert _consent(world, tenant_id, grants=(GRAPH_APP,)).status_code == 201
    assert "access_token" in _app_token(world, tenant_id, GRAPH)
    refused = _app_token(world, tenant_id, EXCHANGE)
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [65001], refused


def test_consent_needs_the_partners_own_app_and_grants(world: World) -> None:
    tenant_id = _fabrikam(world)
    pc = world.partner_center()
    path = f"/v1/customers/{tenant_id}/applicationconsents"
    assert pc.post(path, json={"applicationId": "someone-else", "applicationGrants": [
        {"enterpriseApplicationId": GRAPH_APP, "scope": "User.Read.All"}]}).status_code == 400
    assert pc.post(path, json={"applicationId": world.client_id, "applicationGrants": []}).status_code == 400
    assert pc.post("/v1/customers/no-such-customer/applicationconsents", json={
        "applicationId": world.client_id,
        "applicationGrants": [{"enterpriseApplicationId": GRAPH_APP, "scope": "x"}]}).status_code == 404


def test_gdap_roles_decide_what_the_partner_may_do(world: World) -> None:
    tenant_id = _fabrikam(world, consented_apps=[world.client_id], gdap_roles=[LICENSE_ADMIN],
                             skus=[{"sku_part_number": "O365_BUSINESS_ESSENTIALS", "units": 2}],
                             users=[{"userPrincipalName": "old@fabrikam.example", "usageLocation": "NL"}])
    graph = world.graph(tenant_id)
    assert graph.get("/v1.0/users").status_code == 200  # any role reads
    denied = graph.post("/v1.0/users", json=new_user("new@fabrikam.example"))
    assert denied.status_code == 403
    assert denied.json()["error"] == {**denied.json()["error"], "code": "Authorization_RequestDenied",
                                      "message": "Insufficient privileges to complete the operation."}
    sku_id = world.emulator.tenant(tenant_id)["skus"][0]["sku_id"]
    licence = {"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []}
    assert graph.post("/v1.0/users/old@fabrikam.example/assignLicense", json=licence).status_code == 200
    command = {"CmdletInput": {"CmdletName": "Get-Mailbox", "Parameters": {"Identity": "old@fabrikam.example"}}}
    assert world.exchange(tenant_id).post(f"/adminapi/beta/{tenant_id}/InvokeCommand",
                                          json=command).status_code == 403

    world.control().patch(f"/_emulator/tenants/{tenant_id}", json={"gdap_roles": [USER_ADMIN, EXCHANGE_ADMIN]})
    assert graph.post("/v1.0/users", json=new_user("new@fabrikam.example")).status_code == 201
    assert world.exchange(tenant_id).post(f"/adminapi/beta/{tenant_id}/InvokeCommand",
                                          json=command).status_code == 200
    world.control().patch(f"/_emulator/tenants/{tenant_id}", json={"gdap_roles": []})
    assert graph.get("/v1.0/users").status_code == 403


def test_relationships_carry_their_roles_and_an_expiring_one_ends_soon(world: World) -> None:
    tenant_id = _fabrikam(world, gdap="expiring", gdap_roles=[USER_ADMIN])
    partner_graph = world.graph(world.partner_tenant)

    def relationship(tid: str) -> dict[str, Any]:
        return dict(partner_graph.get("/v1.0/tenantRelationships/delegatedAdminRelationships",
                                      params={"$filter": f"customer/tenantId eq '{tid}'"}).json()["value"][0])

    expiring = relationship(tenant_id)
    assert expiring["status"] == "expiring"
    assert expiring["accessDetails"]["unifiedRoles"] == [{"roleDefinitionId": USER_ADMIN}]
    ends = time.mktime(time.strptime(expiring["endDateTime"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    assert ends - time.time() < 14 * 86400
    default = relationship(world.tenant_id)  # seeded active without roles: what the engine needs
    assert {r["roleDefinitionId"] for r in default["accessDetails"]["unifiedRoles"]} == {
        USER_ADMIN, LICENSE_ADMIN, EXCHANGE_ADMIN}
    assert world.control().patch(f"/_emulator/tenants/{tenant_id}",
                                 json={"gdap_roles": ["not-a-role"]}).status_code == 400


def _public_app(world: World) -> msal.PublicClientApplication:
    return msal.PublicClientApplication(world.client_id, authority=f"{world.emulator.url}/{world.partner_tenant}",
                                        instance_discovery=False, http_client=_http(world))


def test_msal_device_flow_is_approved_through_the_control_api(world: World) -> None:
    app = _public_app(world)
    flow = app.initiate_device_flow(scopes=[f"{PARTNER_CENTER}/.default"])
    assert flow["user_code"] and flow["user_code"] in flow["message"] and flow["verification_uri"] in flow["message"]
    pending = world.emulator.device_codes()
    assert [(p["user_code"], p["state"]) for p in pending] == [(flow["user_code"], "pending")]
    assert all("device_code" not in p for p in pending)
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(app.acquire_token_by_device_flow(flow)))
    waiter.start()
    world.emulator.answer_device_code(flow["user_code"])
    waiter.join(timeout=30)
    assert "access_token" in result and result["refresh_token"], result.get("error_description")
    # What the engine does with it: App+User tokens for Partner Center, from the stored refresh token.
    engine_app = msal.ConfidentialClientApplication(world.client_id, client_credential=world.client_secret,
                                                    authority=f"{world.emulator.url}/{world.partner_tenant}",
                                                    instance_discovery=False, http_client=_http(world))
    redeemed = engine_app.acquire_token_by_refresh_token(result["refresh_token"], scopes=[f"{PARTNER_CENTER}/.default"])
    assert "access_token" in redeemed, redeemed
    assert world.emulator.device_codes() == []  # a code is used once

    revoked = world.control().post(f"/_emulator/partners/{world.client_id}/revoke-refresh-tokens").json()
    assert revoked["revoked"] >= 1
    refused = engine_app.acquire_token_by_refresh_token(result["refresh_token"], scopes=[f"{PARTNER_CENTER}/.default"])
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [50173], refused


def test_a_declined_device_code_ends_the_flow(world: World) -> None:
    app = _public_app(world)
    flow = app.initiate_device_flow(scopes=[f"{PARTNER_CENTER}/.default"])
    world.emulator.answer_device_code(flow["user_code"], approve=False)
    result = app.acquire_token_by_device_flow(flow)
    assert result["error"] == "authorization_declined", result
    with pytest.raises(httpx.HTTPStatusError):
        world.emulator.answer_device_code(flow["user_code"])


def test_consents_and_roles_survive_a_saved_world() -> None:
    world = EmulatorWorld()
    world.add_partner({"tenant_id": "p", "client_id": "c", "client_secret": "s"})
    tenant = world.create_tenant({"tenant_id": "t", "company_name": "T", "consented_apps": ["c"],
                                  "gdap_roles": [USER_ADMIN]}, now=time.time())
    token = world.issue_refresh_token("c")
    restored, _ = persistence.load(persistence.dump(world, {}))
    again = restored.tenants["t"]
    assert list(again.consents) == ["c"] and again.gdap_roles == [USER_ADMIN]
    assert restored.refresh_tokens[token] == ("c", False)
    legacy = persistence.dump(world, {})
    for raw in legacy["tenants"]:
        del raw["consents"]  # a world saved before consents existed: every partner could sign in
    assert list(persistence.load(legacy)[0].tenants["t"].consents) == ["c"]
    assert tenant.consents["c"].grants == restored.tenants["t"].consents["c"].grants
