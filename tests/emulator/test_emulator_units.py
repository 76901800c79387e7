"""In-process checks of the emulator's parts: buckets, filters, tokens, the ASGI app, the state file."""
from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest

from emulator import persistence
from emulator.app import create_app
from emulator.clock import Clock
from emulator.errors import ApiError
from emulator.routes.odata import Filter
from emulator.testing import running_emulator
from emulator.throttle import Throttle, header_value
from emulator.tokens import GRAPH, PARTNER_CENTER, TokenError, TokenSigner

from .emulator_world import BASIC, BASIC_SKU_ID, World, new_user


def frozen_clock() -> Clock:
    clock = Clock()
    clock.freeze()
    return clock


def test_bucket_announces_whole_seconds_and_catches_early_callers() -> None:
    clock = frozen_clock()
    throttle = Throttle(clock)
    assert throttle.check("graph", "t", 2).retry_after is None
    assert throttle.check("graph", "t", 2).retry_after is None
    refused = throttle.check("graph", "t", 2)
    # A token is back in 0.5 s; Microsoft says whole seconds, and the key stays closed that long.
    assert refused.retry_after == 1.0 and not refused.violation
    clock.advance(0.2)
    early = throttle.check("graph", "t", 2)
    assert early.violation and early.retry_after == 1.0  # 0.8 s left, rounded up
    clock.advance(0.8)
    assert throttle.check("graph", "t", 2).retry_after is None  # exactly at the announced moment
    assert throttle.check("graph", "other", 2).retry_after is None  # buckets are per key
    assert throttle.check("exchange", "t", 2).retry_after is None  # and per API family
    assert throttle.check("graph", "t", None).retry_after is None  # no rate: no throttling
    assert (header_value(0.35), header_value(2.0)) == ("0.35", "2")


def test_a_slow_limit_announces_longer_windows() -> None:
    clock = frozen_clock()
    throttle = Throttle(clock)
    assert throttle.check("partner_center", "p", 0.25).retry_after is None
    assert throttle.check("partner_center", "p", 0.25).retry_after == 4.0
    clock.advance(4.0)
    assert throttle.check("partner_center", "p", 0.25).retry_after is None


def test_callers_that_ignore_the_window_make_it_grow() -> None:
    clock = frozen_clock()
    throttle = Throttle(clock)
    throttle.check("graph", "t", 1, growth=3)
    assert throttle.check("graph", "t", 1, growth=3).retry_after == 1.0
    clock.advance(0.5)
    ignored = throttle.check("graph", "t", 1, growth=3)
    assert ignored.violation and ignored.retry_after == 3.0  # the window restarts three times longer
    clock.advance(1.0)
    assert throttle.check("graph", "t", 1, growth=3).retry_after == 9.0
    clock.advance(9.0)
    assert throttle.check("graph", "t", 1, growth=3).retry_after is None  # waited out: open again
    assert throttle.check("graph", "t", 1, growth=3).retry_after == 1.0  # and back to the plain window
    clock.advance(0.5)
    plain = Throttle(clock)
    plain.check("graph", "t", 1)
    plain.check("graph", "t", 1)
    clock.advance(0.5)
    assert plain.check("graph", "t", 1).retry_after == 1.0  # without growth the window stays put
    clock.advance(0.5)
    assert plain.check("graph", "t", 1).retry_after is None


def test_filter_parses_what_the_engine_sends() -> None:
    user = {"userPrincipalName": "O'Brien@Contoso.com", "accountEnabled": True, "customer": {"tenantId": "x"}}
    assert Filter("userPrincipalName eq 'o''brien@contoso.com'")(user)
    assert Filter("startswith(userPrincipalName,'o''b') and accountEnabled eq true")(user)
    assert Filter("customer/tenantId eq 'x'")(user)
    assert not Filter("accountEnabled ne true")(user)
    assert Filter("userPrincipalName eq 'a@b.c'").equals == {"userPrincipalName": "a@b.c"}
    with pytest.raises(ApiError):
        Filter("userPrincipalName gt 'a'")


def test_tokens_bind_audience_and_expiry() -> None:
    clock = frozen_clock()
    signer = TokenSigner(b"k" * 32, clock)

    def issue(by: TokenSigner, lifetime_s: float) -> str:
        return by.issue(tenant_id="t", resource=GRAPH, client_id="c", lifetime_s=lifetime_s)

    token = issue(signer, 60)
    assert signer.verify(f"Bearer {token}", GRAPH)["tid"] == "t"
    clock.advance(59)
    assert signer.verify(f"Bearer {token}", GRAPH)["tid"] == "t"
    clock.advance(1)
    with pytest.raises(TokenError) as late:
        signer.verify(f"Bearer {token}", GRAPH)
    assert late.value.reason == "expired"
    token = issue(signer, 60)
    foreign = issue(TokenSigner(b"x" * 32, clock), 60)
    for header, resource, reason in [(f"Bearer {token}", PARTNER_CENTER, "audience"), (None, GRAPH, "missing"),
                                     (f"Bearer {token[:-2]}xx", GRAPH, "malformed"),
                                     (f"Bearer {foreign}", GRAPH, "malformed"),
                                     (f"Bearer {issue(signer, 0)}", GRAPH, "expired")]:
        with pytest.raises(TokenError) as refused:
            signer.verify(header, resource)
        assert refused.value.reason == reason


async def _in_process_flow() -> dict[str, Any]:
    app = create_app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://emulator") as client:
        await client.post("/_emulator/partners", json={"tenant_id": "p", "client_id": "c", "client_secret": "s"})
        await client.post("/_emulator/tenants", json={
            "tenant_id": "t", "company_name": "T", "initial_domain": "t.onmicrosoft.com",
            "skus": [{"sku_part_number": BASIC, "units": 2}], "consented_apps": ["c"],
            "users": [{"userPrincipalName": "boss@t.onmicrosoft.com", "directory_roles": ["Global Administrator"]}]})
        token = (await client.post("/t/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": "c", "client_secret": "s",
            "scope": f"{GRAPH}/.default"})).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        user = (await client.post("/v1.0/users", json=new_user("a@t.onmicrosoft.com", usageLocation="US"),
                                  headers=auth)).json()
        body = {"addLicenses": [{"skuId": BASIC_SKU_ID, "disabledPlans": []}], "removeLicenses": []}
        licensed = await client.post(f"/v1.0/users/{user['id']}/assignLicense", json=body, headers=auth)
        assert licensed.status_code == 200
        state = persistence.dump(app.world, app.faults.view())
    restored, _ = persistence.load(state)
    return {"restored": restored, "user": user}


def test_in_process_app_and_state_round_trip() -> None:
    result = asyncio.run(_in_process_flow())
    tenant = result["restored"].tenants["t"]
    assert tenant.skus[BASIC].consumed == 1
    assert tenant.find_user("A@t.onmicrosoft.com").id == result["user"]["id"]
    assert tenant.find_user(result["user"]["id"]).mailbox == "ready"
    assert tenant.find_user("boss@t.onmicrosoft.com").roles == ["62e90394-69f5-4237-9190-012177145e10"]


def test_state_file_survives_a_restart(tmp_path: Any) -> None:
    state = str(tmp_path / "world.json")
    with running_emulator(state_file=state) as first:
        first.add_partner("p", "c", "s")
        first.add_tenant(tenant_id="t", company_name="T", initial_domain="t.onmicrosoft.com", consented_apps=["c"])
        token = first.token("t", "c", "s")
    assert os.path.exists(state)
    with running_emulator(state_file=state) as second, second.client() as client:
        assert second.tenant("t")["initial_domain"] == "t.onmicrosoft.com"
        listed = client.get("/v1.0/users", headers={"Authorization": f"Bearer {token}"})
        assert listed.status_code == 200  # the signing key was kept, so earlier tokens still verify


def test_control_api_rejects_bad_seeds(world: World) -> None:
    control = world.control()
    assert control.post("/_emulator/tenants", json={"skus": [{"units": 3}]}).status_code == 400
    assert control.post("/_emulator/tenants", json={"tenant_id": world.tenant_id}).status_code == 409
    overbooked = {"company_name": "X", "skus": [{"sku_part_number": BASIC, "units": 0}],
                  "users": [{"userPrincipalName": "a@x.onmicrosoft.com",
                             "assignedLicenses": [{"skuId": BASIC_SKU_ID}]}]}
    assert control.post("/_emulator/tenants", json=overbooked).status_code == 400
    assert control.get("/_emulator/tenants/nope").status_code == 404
    assert control.patch(f"/_emulator/tenants/{world.tenant_id}", json={"gdap": "maybe"}).status_code == 400
