"""Sign-in against the emulator: msal unchanged, the AADSTS error shapes, token binding and expiry."""
from __future__ import annotations

import ssl

import httpx
import msal

from .emulator_world import GRAPH, PARTNER_CENTER, World


def _msal_app(world: World, secret: str, tenant: str | None = None) -> msal.ConfidentialClientApplication:
    http = httpx.Client(verify=ssl.create_default_context(cafile=world.emulator.ca_path))
    world.clients.append(http)
    return msal.ConfidentialClientApplication(
        world.client_id, client_credential=secret, authority=f"{world.emulator.url}/{tenant or world.tenant_id}",
        instance_discovery=False, http_client=http)


def test_msal_acquires_then_serves_from_cache(world: World) -> None:
    app = _msal_app(world, world.client_secret)
    first = app.acquire_token_for_client(scopes=[f"{GRAPH}/.default"])
    assert first["token_source"] == "identity_provider", first
    assert first["token_type"] == "Bearer" and first["expires_in"] > 3000
    second = app.acquire_token_for_client(scopes=[f"{GRAPH}/.default"])
    assert second["token_source"] == "cache"
    assert second["access_token"] == first["access_token"]
    users = world.emulator.client(headers={"Authorization": f"Bearer {first['access_token']}"})
    world.clients.append(users)
    assert users.get("/v1.0/users").status_code == 200


def test_msal_signs_in_by_domain_name_authority(world: World) -> None:
    app = _msal_app(world, world.client_secret, tenant="contoso.onmicrosoft.com")
    result = app.acquire_token_for_client(scopes=[f"{GRAPH}/.default"])
    assert "access_token" in result, result


def test_wrong_secret_is_invalid_client(world: World) -> None:
    result = _msal_app(world, "not-the-secret").acquire_token_for_client(scopes=[f"{GRAPH}/.default"])
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215")
    assert result["error_codes"] == [7000215]


def test_token_endpoint_errors_have_the_aadsts_shape(world: World) -> None:
    control = world.control()

    def token(tenant: str, **form: str) -> httpx.Response:
        body = {"grant_type": "client_credentials", "client_id": world.client_id,
                "client_secret": world.client_secret, "scope": f"{GRAPH}/.default", **form}
        return control.post(f"/{tenant}/oauth2/v2.0/token", data=body)

    unknown_client = token(world.tenant_id, client_id="someone-else")
    assert unknown_client.status_code == 400
    assert unknown_client.json()["error"] == "unauthorized_client"
    assert unknown_client.json()["error_codes"] == [700016]
    assert {"timestamp", "trace_id", "correlation_id"} <= unknown_client.json().keys()
    bad_scope = token(world.tenant_id, scope=GRAPH)
    assert (bad_scope.status_code, bad_scope.json()["error"]) == (400, "invalid_scope")
    unknown_tenant = token("no-such-tenant.example")
    assert unknown_tenant.json()["error_codes"] == [90002]
    partner_own = token(world.partner_tenant, scope=f"{PARTNER_CENTER}/.default")
    assert partner_own.status_code == 200


def test_token_is_bound_to_resource_and_tenant(world: World) -> None:
    partner_center_token = world.token(world.partner_tenant, PARTNER_CENTER)
    control = world.control()
    foreign = control.get("/v1.0/users", headers={"Authorization": f"Bearer {partner_center_token}"})
    assert foreign.status_code == 401
    assert foreign.json()["error"]["code"] == "InvalidAuthenticationToken"
    garbage = control.get("/v1.0/users", headers={"Authorization": "Bearer abc.def.ghi"})
    assert garbage.status_code == 401
    missing = control.get("/v1/customers")
    assert missing.status_code == 401 and missing.json()["code"] == 900
    graph_token = world.token()
    on_partner_center = control.get("/v1/customers", headers={"Authorization": f"Bearer {graph_token}"})
    assert on_partner_center.status_code == 401


def test_expired_token_is_refused(world: World) -> None:
    world.emulator.set_faults(token_lifetime_s=1)
    world.emulator.freeze_clock()
    client = world.graph()
    assert client.get("/v1.0/users").status_code == 200
    world.emulator.advance_clock(1)
    expired = client.get("/v1.0/users")
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "Access token has expired or is not yet valid."


def test_refresh_token_grant_for_app_plus_user(world: World) -> None:
    partner = world.emulator.add_partner(world.partner_tenant, "pc-app", "pc-secret", refresh_token="stored-rt")
    assert partner["refresh_token"] == "stored-rt"
    http = httpx.Client(verify=ssl.create_default_context(cafile=world.emulator.ca_path))
    world.clients.append(http)
    app = msal.ConfidentialClientApplication("pc-app", client_credential="pc-secret", http_client=http,
                                             authority=f"{world.emulator.url}/{world.partner_tenant}",
                                             instance_discovery=False)
    result = app.acquire_token_by_refresh_token("stored-rt", scopes=[f"{PARTNER_CENTER}/.default"])
    assert "access_token" in result, result
    pc = world.emulator.client(headers={"Authorization": f"Bearer {result['access_token']}"})
    world.clients.append(pc)
    assert pc.get("/v1/customers").status_code == 200
    refused = app.acquire_token_by_refresh_token("wrong-rt", scopes=[f"{PARTNER_CENTER}/.default"])
    assert refused["error"] == "invalid_grant"


def test_openid_configuration_points_back_here(world: World) -> None:
    config = world.control().get(f"/{world.tenant_id}/v2.0/.well-known/openid-configuration").json()
    assert config["token_endpoint"] == f"{world.emulator.url}/{world.tenant_id}/oauth2/v2.0/token"
    assert config["authorization_endpoint"].startswith(world.emulator.url)
    assert config["issuer"] == f"{world.emulator.url}/{world.tenant_id}/v2.0"
