"""Partner Center purchases in the emulator: quantity PATCH, MS-RequestId replay, MCA, delay, lost answers, carts."""
from __future__ import annotations

from typing import Any

import httpx

from emulator import catalog

from .emulator_world import BASIC_SKU_ID, World

MCA = "117a77b0-9360-443b-8795-c6dedc750cf9"
CONTACT = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.com"}


def _sign_mca(world: World, pc: httpx.Client) -> None:
    pc.post(f"/v1/customers/{world.tenant_id}/agreements",
            json={"primaryContact": CONTACT, "templateId": MCA, "type": "MicrosoftCustomerAgreement"}
            ).raise_for_status()


def _subscription(world: World, pc: httpx.Client) -> dict[str, Any]:
    items = pc.get(f"/v1/customers/{world.tenant_id}/subscriptions").json()["items"]
    return dict(items[0])


def _patch(world: World, pc: httpx.Client, sub: dict[str, Any], quantity: int, request_id: str) -> httpx.Response:
    return pc.patch(f"/v1/customers/{world.tenant_id}/subscriptions/{sub['id']}",
                    json={**sub, "quantity": quantity}, headers={"MS-RequestId": request_id})


def _graph_enabled(world: World) -> int:
    skus = world.graph().get("/v1.0/subscribedSkus").json()["value"]
    return int(next(s for s in skus if s["skuId"] == BASIC_SKU_ID)["prepaidUnits"]["enabled"])


def test_quantity_grows_once_per_request_id(world: World) -> None:
    pc = world.partner_center()
    _sign_mca(world, pc)
    sub = _subscription(world, pc)
    assert sub["quantity"] == 3
    first = _patch(world, pc, sub, 5, "req-1")
    assert first.status_code == 200 and first.json()["quantity"] == 5
    # The same MS-RequestId replays the first answer: no second purchase even with another quantity.
    again = _patch(world, pc, sub, 7, "req-1")
    assert again.status_code == 200 and again.json()["quantity"] == 5
    assert _subscription(world, pc)["quantity"] == 5
    assert world.emulator.tenant(world.tenant_id)["skus"][0]["units"] == 5
    assert _graph_enabled(world) == 5
    assert world.emulator.stats()["purchases"] == 1
    # The same quantity again is no purchase; a decrease is refused.
    assert _patch(world, pc, sub, 5, "req-2").status_code == 200
    assert _patch(world, pc, sub, 4, "req-3").status_code == 400
    assert world.emulator.stats()["purchases"] == 1


def test_no_mca_is_403_and_nothing_bought(world: World) -> None:
    pc = world.partner_center()
    sub = _subscription(world, pc)
    refused = _patch(world, pc, sub, 4, "req-1")
    assert refused.status_code == 403 and refused.json()["code"] == 13605
    assert _subscription(world, pc)["quantity"] == 3
    assert world.emulator.stats()["purchases"] == 0
    missing = pc.patch(f"/v1/customers/{world.tenant_id}/subscriptions/nope", json={"quantity": 9})
    assert missing.status_code == 404


def test_new_units_reach_graph_after_the_purchase_delay(world: World) -> None:
    world.emulator.freeze_clock()
    world.emulator.set_faults(purchase_delay_s=60)
    pc = world.partner_center()
    _sign_mca(world, pc)
    assert _patch(world, pc, _subscription(world, pc), 6, "req-1").json()["quantity"] == 6
    assert _graph_enabled(world) == 3
    view = world.emulator.tenant(world.tenant_id)["skus"][0]
    assert (view["units"], view["pending_units"], view["free"]) == (6, 3, 3)
    world.emulator.advance_clock(61)
    assert _graph_enabled(world) == 6


def test_lost_answer_applies_the_purchase_and_a_replay_tells(world: World) -> None:
    pc = world.partner_center()
    _sign_mca(world, pc)
    sub = _subscription(world, pc)
    world.emulator.set_faults(lost_answer_rate=1)
    lost = _patch(world, pc, sub, 4, "req-1")
    assert lost.status_code == 500
    world.emulator.set_faults(lost_answer_rate=0)
    assert _subscription(world, pc)["quantity"] == 4
    replay = _patch(world, pc, sub, 4, "req-1")
    assert replay.status_code == 200 and replay.json()["quantity"] == 4
    stats = world.emulator.stats()
    assert (stats["purchases"], stats["lost_answers"]) == (1, 1)


def test_cart_checkout_creates_a_subscription(world: World) -> None:
    pc = world.partner_center()
    item = catalog.catalog_item_id("SPB")
    line = {"lineItems": [{"id": 0, "catalogItemId": item, "quantity": 2, "billingCycle": "monthly",
                           "termDuration": "P1M"}]}
    cart = pc.post(f"/v1/customers/{world.tenant_id}/carts", json=line, headers={"MS-RequestId": "cart-1"})
    assert cart.status_code == 201
    same = pc.post(f"/v1/customers/{world.tenant_id}/carts", json=line, headers={"MS-RequestId": "cart-1"})
    assert same.json()["id"] == cart.json()["id"]
    checkout = f"/v1/customers/{world.tenant_id}/carts/{cart.json()['id']}/checkout"
    assert pc.post(checkout, headers={"MS-RequestId": "co-1"}).status_code == 403  # no MCA
    _sign_mca(world, pc)
    ordered = pc.post(checkout, headers={"MS-RequestId": "co-2"})
    assert ordered.status_code == 201
    order = ordered.json()["orders"][0]
    assert pc.post(checkout, headers={"MS-RequestId": "co-2"}).json()["orders"][0]["id"] == order["id"]
    assert pc.post(checkout, headers={"MS-RequestId": "co-3"}).status_code == 400
    subs = {s["id"]: s for s in pc.get(f"/v1/customers/{world.tenant_id}/subscriptions").json()["items"]}
    assert subs[order["lineItems"][0]["subscriptionId"]]["quantity"] == 2
    assert world.emulator.stats()["purchases"] == 1
    unknown = pc.post(f"/v1/customers/{world.tenant_id}/carts",
                      json={"lineItems": [{"catalogItemId": "NOPE:0001:X", "quantity": 1}]})
    assert unknown.status_code == 400
