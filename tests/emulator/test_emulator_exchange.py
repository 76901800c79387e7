"""Exchange admin InvokeCommand: Get-Mailbox before and after readiness, Set-Mailbox adding an alias."""
from __future__ import annotations

from .emulator_world import BASIC_SKU_ID, World, new_user

ADD_BASIC = {"addLicenses": [{"skuId": BASIC_SKU_ID, "disabledPlans": []}], "removeLicenses": []}


def _command(name: str, **parameters: object) -> dict[str, object]:
    return {"CmdletInput": {"CmdletName": name, "Parameters": parameters}}


def test_mailbox_not_found_until_ready_then_alias_added_once(world: World) -> None:
    world.emulator.set_faults(mailbox_delay_s={"first": 0.4})
    world.emulator.freeze_clock()
    graph = world.graph()
    user = graph.post("/v1.0/users", json=new_user("eve@contoso.com", usageLocation="NL")).json()
    exchange = world.exchange()
    path = f"/adminapi/beta/{world.tenant_id}/InvokeCommand"
    assert exchange.post(path, json=_command("Get-Mailbox", Identity="eve@contoso.com")).status_code == 404
    graph.post(f"/v1.0/users/{user['id']}/assignLicense", json=ADD_BASIC)
    early = exchange.post(path, json=_command("Get-Mailbox", Identity="eve@contoso.com"))
    assert early.status_code == 404
    assert "ManagementObjectNotFoundException" in early.json()["error"]["details"][0]["message"]
    assert "couldn't be found" in early.json()["error"]["message"]
    alias = {"@odata.type": "#Exchange.GenericHashTable", "Add": ["smtp:eve.alias@contoso.com"]}
    assert exchange.post(path, json=_command("Set-Mailbox", Identity="eve@contoso.com",
                                             EmailAddresses=alias)).status_code == 404
    world.emulator.advance_clock(0.4)
    mailbox = exchange.post(path, json=_command("Get-Mailbox", Identity="eve@contoso.com")).json()["value"][0]
    assert mailbox["PrimarySmtpAddress"] == "eve@contoso.com"
    for _ in range(2):
        done = exchange.post(path, json=_command("Set-Mailbox", Identity="eve@contoso.com", EmailAddresses=alias))
        assert done.status_code == 200
    shown = graph.get(f"/v1.0/users/{user['id']}", params={"$select": "proxyAddresses"}).json()
    assert shown["proxyAddresses"] == ["SMTP:eve@contoso.com", "smtp:eve.alias@contoso.com"]
    foreign = {"Add": ["smtp:eve@elsewhere.example"]}
    refused = exchange.post(path, json=_command("Set-Mailbox", Identity="eve@contoso.com", EmailAddresses=foreign))
    assert refused.status_code == 400


def test_exchange_token_must_match_the_organization(world: World) -> None:
    other = world.add_tenant(company_name="Other", initial_domain="other.onmicrosoft.com",
                             consented_apps=[world.client_id])
    exchange = world.exchange(other["tenant_id"])
    refused = exchange.post(f"/adminapi/beta/{world.tenant_id}/InvokeCommand", json=_command("Get-Mailbox"))
    assert refused.status_code == 401
    graph_token = world.graph()
    assert graph_token.post(f"/adminapi/beta/{world.tenant_id}/InvokeCommand",
                            json=_command("Get-Mailbox")).status_code == 401


def test_exchange_throttles_per_tenant_apart_from_graph_in_its_own_shape(world: World) -> None:
    from shared.microsoft.errors import Throttled, error_from_response

    world.emulator.set_faults(graph_rate_per_tenant=None, exchange_rate_per_tenant=2)
    exchange, graph = world.exchange(), world.graph()
    path = f"/adminapi/beta/{world.tenant_id}/InvokeCommand"
    answers = [exchange.post(path, json=_command("Get-Mailbox", Identity="nobody@contoso.com")) for _ in range(3)]
    throttled = answers[-1]
    assert [a.status_code for a in answers] == [404, 404, 429]
    assert throttled.headers["Retry-After"] == "1"
    body = throttled.json()["error"]
    assert body["code"] == "TooManyRequests" and "|TooManyRequests|" in body["message"]
    assert "Try again in 1 seconds" in body["message"]
    assert graph.get("/v1.0/domains").status_code == 200  # Graph's bucket is another one
    error = error_from_response(429, throttled.text, "exchange", retry_after=1.0)
    assert isinstance(error, Throttled) and error.retry_after == 1.0
