"""buy_seats against the fake Partner Center: what is bought, once, within the policy."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from shared.db.models import AuditEvent, OutboxMessage, Purchase
from shared.db.types import utcnow
from shared.microsoft.errors import Transient
from shared.pipeline.outcomes import Blocked, Done, Wait
from shared.purchases import ledger, policy
from shared.purchases.buying import buy_seats
from shared.users.seats import reserve_seat
from tests.shared.steps_support import World


def _direct(world: World, units: int = 1, **rules: Any) -> None:
    world.provider.kind = "direct"
    world.fake_sku.units = units
    policy.put(world.db, service_provider_id=world.provider.id, customer_id=world.customer.id,
               enabled=rules.get("enabled", True), max_units_per_day=rules.get("per_day"),
               max_units_per_order=rules.get("per_order"))


def _requests(world: World, n: int) -> list[Any]:
    reqs = [world.b.provision(world.user(f"u{i}@contoso.com"), world.plan) for i in range(n)]
    for req in reqs:
        reserve_seat(world.ctx(req, "reserve_seat"))
    return reqs


def _purchases(world: World) -> list[Purchase]:
    world.db.flush()
    return list(world.db.scalars(select(Purchase).where(Purchase.customer_id == world.customer.id)))


def test_an_indirect_reseller_buys_nothing(world: World) -> None:
    [req] = _requests(world, 1)
    assert buy_seats(world.ctx(req, "buy_seats")) == Done(
        skipped=True, note="an indirect reseller's seats are not bought by the engine")
    assert world.ms.calls["list_subscriptions"] == 0


def test_one_purchase_buys_for_every_held_seat_and_the_others_buy_nothing(world: World) -> None:
    _direct(world, units=1)
    reqs = _requests(world, 3)
    first = buy_seats(world.ctx(reqs[0], "buy_seats"))
    # Graph was read before the purchase: the buyer looks again after PURCHASE_POLL_S (a durable timer).
    assert isinstance(first, Wait) and "bought seats not in Graph yet: 2 O365_BUSINESS_ESSENTIALS" in first.reason
    assert first.until > utcnow() + timedelta(seconds=20)  # PURCHASE_POLL_S, 30 s by default
    outcomes = [buy_seats(world.ctx(req, "buy_seats")) for req in reqs]
    assert all(isinstance(o, Done) for o in outcomes), outcomes
    [p] = _purchases(world)
    assert (p.units, p.from_quantity, p.to_quantity, p.state) == (2, 1, 3, ledger.VISIBLE)
    assert p.request_ids == [reqs[0].id] and p.ms_request_id
    assert world.fake_sku.units == 3 and len(world.ms.purchases) == 1
    assert world.db.scalar(select(AuditEvent.action).where(AuditEvent.object_id == p.id)) == "purchase.confirmed"
    # Re-running any of them (a redelivery) buys nothing more.
    for req in reqs:
        assert isinstance(buy_seats(world.ctx(req, "buy_seats")), Done)
    assert len(world.ms.purchases) == 1 and len(_purchases(world)) == 1


def test_a_lost_answer_is_read_back_not_bought_again(world: World) -> None:
    _direct(world, units=1)
    [req] = _requests(world, 2)[:1]
    world.ms.lose_answers = 1
    with pytest.raises(Transient):
        buy_seats(world.ctx(req, "buy_seats"))
    [p] = _purchases(world)
    assert p.state == ledger.SENT and world.fake_sku.units == 2  # applied at Microsoft, unknown here
    assert isinstance(buy_seats(world.ctx(req, "buy_seats")), Done)  # the step's retry
    assert p.state == ledger.VISIBLE and p.to_quantity == 2
    assert world.ms.calls["update_subscription_quantity"] == 1 and len(world.ms.purchases) == 1


def test_a_lost_answer_not_applied_is_sent_again_with_the_same_request_id(world: World) -> None:
    _direct(world, units=1)
    [req] = _requests(world, 2)[:1]
    world.ms.fail["update_subscription_quantity"] = [
        Transient("Partner Center PATCH unreachable (ReadTimeout)", ambiguous=True)]
    with pytest.raises(Transient):
        buy_seats(world.ctx(req, "buy_seats"))
    [p] = _purchases(world)
    sent_with = p.ms_request_id
    assert world.fake_sku.units == 1 and p.state == ledger.SENT
    assert isinstance(buy_seats(world.ctx(req, "buy_seats")), Wait)  # sent again, then waits for Graph
    assert world.ms.purchases == [(world.fake_sku.subscription_id, 2, sent_with)]


def test_policy_off_blocks_and_a_daily_cap_buys_only_what_it_allows(world: World) -> None:
    _direct(world, units=1, enabled=False)
    reqs = _requests(world, 3)
    blocked = buy_seats(world.ctx(reqs[0], "buy_seats"))
    assert isinstance(blocked, Blocked) and blocked.reason == "purchase_limit" and "off" in blocked.message
    assert _purchases(world) == []
    policy.put(world.db, service_provider_id=world.provider.id, customer_id=world.customer.id, enabled=True,
               max_units_per_day=1, max_units_per_order=None)
    assert isinstance(buy_seats(world.ctx(reqs[0], "buy_seats")), Wait)  # bought 1, waits for Graph
    capped = buy_seats(world.ctx(reqs[1], "buy_seats"))
    assert isinstance(capped, Blocked) and capped.reason == "purchase_limit" and "daily cap of 1" in capped.message
    assert world.fake_sku.units == 2 and sum(p.units for p in _purchases(world)) == 1


def test_without_an_mca_nothing_is_bought_and_the_request_blocks(world: World) -> None:
    _direct(world, units=1)
    [req] = _requests(world, 2)[:1]
    world.tenant.mca = []
    blocked = buy_seats(world.ctx(req, "buy_seats"))
    assert isinstance(blocked, Blocked) and blocked.reason == "mca_not_signed"
    [p] = _purchases(world)
    assert p.state == ledger.PENDING and p.ms_request_id is None and world.fake_sku.units == 1
    world.tenant.mca = [{"type": "MicrosoftCustomerAgreement", "dateAgreed": "2025-01-01"}]
    assert isinstance(buy_seats(world.ctx(req, "buy_seats")), Wait)
    assert isinstance(buy_seats(world.ctx(req, "buy_seats")), Done)
    assert world.fake_sku.units == 2 and len(world.ms.purchases) == 1


def test_requests_in_the_same_minute_share_a_purchase_within_the_order_size(world: World) -> None:
    now = utcnow()
    kw: dict[str, Any] = {"customer_id": world.customer.id, "sku_part_number": "O365_BUSINESS_ESSENTIALS",
                          "sku_id": None, "batch_s": 60, "max_per_order": 3}
    first = ledger.join_or_create(world.db, units=1, request_id="r1", now=now, **kw)
    same = ledger.join_or_create(world.db, units=2, request_id="r2", now=now + timedelta(seconds=10), **kw)
    assert same.id == first.id and (same.units, same.request_ids) == (3, ["r1", "r2"])
    full = ledger.join_or_create(world.db, units=1, request_id="r3", now=now + timedelta(seconds=20), **kw)
    assert full.id != first.id  # the order size would be passed
    late = ledger.join_or_create(world.db, units=1, request_id="r4", now=now + timedelta(seconds=200), **kw)
    assert late.id not in (first.id, full.id)


def test_a_confirmed_purchase_is_announced_to_who_asked_for_it(world: World) -> None:
    from shared.db.models import NotificationRecipients

    world.db.add(NotificationRecipients(customer_id=world.customer.id, emails=["it@contoso.com"],
                                        events=["purchased"]))
    _direct(world, units=1)
    [req] = _requests(world, 2)[:1]
    buy_seats(world.ctx(req, "buy_seats"))
    world.db.flush()
    [msg] = world.db.scalars(select(OutboxMessage).where(OutboxMessage.topic == "seats.purchased"))
    assert msg.payload["to"] == "it@contoso.com" and msg.payload["units"] == 1 and msg.payload["to_quantity"] == 2
