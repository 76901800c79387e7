"""The emulator's one clock: real by default, frozen and advanced by tests, never running backwards."""
from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from emulator.app import create_app
from emulator.clock import Clock

from .emulator_world import World, new_user


def test_a_frozen_clock_moves_only_when_advanced_and_resumes_from_there() -> None:
    clock = Clock()
    assert not clock.frozen
    clock.freeze()
    stood = clock.time(), clock.monotonic()
    assert (clock.time(), clock.monotonic()) == stood
    clock.advance(30)
    assert (clock.time(), clock.monotonic()) == (stood[0] + 30, stood[1] + 30)
    clock.resume()
    assert not clock.frozen
    assert clock.time() >= stood[0] + 30  # running again from where it stood, not from real time
    assert clock.time() < time.time() + 31
    with pytest.raises(ValueError):
        clock.advance(-1)
    clock.reset()
    assert abs(clock.time() - time.time()) < 5  # plain real time again


def test_a_frozen_clock_sleeps_by_advancing() -> None:
    clock = Clock()
    clock.freeze()
    before = clock.time()
    asyncio.run(clock.sleep(3600))
    assert clock.time() == before + 3600


async def _latency_in_the_emulators_time(clock: Clock) -> float:
    app = create_app(clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://emulator") as client:
        await client.post("/_emulator/partners", json={"tenant_id": "p", "client_id": "c", "client_secret": "s"})
        await client.post("/_emulator/tenants", json={"tenant_id": "t", "company_name": "T",
                                                      "initial_domain": "t.onmicrosoft.com", "consented_apps": ["c"]})
        token = (await client.post("/t/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": "c", "client_secret": "s",
            "scope": "https://graph.microsoft.com/.default"})).json()["access_token"]
        await client.put("/_emulator/faults", json={"latency_ms": {"mean": 250, "jitter": 0}})
        before = clock.time()
        answered = await client.get("/v1.0/domains", headers={"Authorization": f"Bearer {token}"})
        assert answered.status_code == 200
        return clock.time() - before


def test_latency_is_spent_on_the_emulators_clock() -> None:
    clock = Clock()
    clock.freeze()
    assert asyncio.run(_latency_in_the_emulators_time(clock)) == pytest.approx(0.25)


def test_the_control_api_freezes_advances_and_reset_restores_real_time(world: World) -> None:
    control = world.control()
    assert control.get("/_emulator/clock").json()["frozen"] is False
    frozen = world.emulator.freeze_clock()
    assert frozen["frozen"] is True
    moved = world.emulator.advance_clock(86400)
    assert moved["time"] == pytest.approx(frozen["time"] + 86400)
    assert moved["now"][:10] != frozen["now"][:10]  # a day later
    assert control.post("/_emulator/clock/advance", json={"seconds": -1}).status_code == 400
    assert control.post("/_emulator/clock/advance", json={"seconds": True}).status_code == 400
    assert control.put("/_emulator/clock", json={"frozen": "yes"}).status_code == 400
    assert control.put("/_emulator/clock", json={"frozen": True, "extra": 1}).status_code == 400
    resumed = world.emulator.resume_clock()
    assert resumed["frozen"] is False and resumed["time"] >= moved["time"]
    world.emulator.reset()
    assert abs(world.emulator.clock()["time"] - time.time()) < 5


def test_the_world_is_stamped_with_the_emulators_time(world: World) -> None:
    world.emulator.freeze_clock()
    later = world.emulator.advance_clock(10 * 86400)
    graph = world.graph()
    created = graph.post("/v1.0/users", json=new_user("stamped@contoso.com", usageLocation="NL")).json()
    shown = graph.get(f"/v1.0/users/{created['id']}", params={"$select": "createdDateTime"}).json()
    assert shown["createdDateTime"][:10] == later["now"][:10]


def test_a_new_tenant_refuses_sign_in_until_its_delay_passed_on_the_clock(world: World) -> None:
    world.emulator.set_faults(new_tenant_token_delay_s=600)
    world.emulator.freeze_clock()
    created = world.partner_center().post("/v1/customers", json={
        "companyProfile": {"domain": "slowco.onmicrosoft.com"},
        "billingProfile": {"email": "it@slowco.example", "culture": "en-US", "language": "en",
                           "companyName": "SlowCo", "defaultAddress": {
                               "firstName": "Ada", "lastName": "Lovelace", "addressLine1": "1 Way", "city": "Redmond",
                               "state": "WA", "postalCode": "98052", "country": "US", "phoneNumber": "4255550101"}}})
    assert created.status_code == 201
    tenant_id = created.json()["id"]
    token_form = {"grant_type": "client_credentials", "client_id": world.client_id,
                  "client_secret": world.client_secret, "scope": "https://graph.microsoft.com/.default"}
    control = world.control()
    # Consented (as connect_tenant does through Partner Center): only the new tenant's own delay is left.
    assert control.patch(f"/_emulator/tenants/{tenant_id}", json={"consented_apps": [world.client_id]}).is_success
    world.emulator.advance_clock(599)
    early = control.post(f"/{tenant_id}/oauth2/v2.0/token", data=token_form)
    assert (early.status_code, early.json()["error_codes"]) == (400, [700016])
    world.emulator.advance_clock(1)
    assert control.post(f"/{tenant_id}/oauth2/v2.0/token", data=token_form).status_code == 200
