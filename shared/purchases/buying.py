"""buy_seats: a direct reseller's missing seats bought through Partner Center, exactly once, then awaited in Graph.

Per SKU of the user's plan (those the user lacks), under the lock of the customer's TenantSku row:
shortage = consumed + held - enabled - units already on their way. A shortage joins the SKU's purchase still
collecting (shared.purchases.ledger) or starts one, within the purchase policy; either way the request then
waits for every purchase of the SKU that was unfinished when it decided. Any waiting request drives those
purchases (anyone may: the row lock and the MS-RequestId make it once):

    pending -> target quantity and MS-RequestId committed -> PATCH -> confirmed -> Graph shows it -> visible

A purchase found `sent` (an earlier attempt's answer was lost, or its worker died) has its quantity read
back first: reached, it is confirmed; not, it is sent again with the same MS-RequestId.
"""
from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from shared import audit
from shared.agreements import mca
from shared.db.models import Customer, Purchase, ServiceProvider
from shared.microsoft.errors import BadRequest, Forbidden
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Blocked, Done, StepFailed, Wait
from shared.pipeline.ports import PartnerCenter
from shared.plans.skus import by_part_number, store_skus
from shared.providers.credentials import provider_of
from shared.purchases import events, ledger, policy
from shared.seats import ledger as seats
from shared.tenants import access
from shared.users import checks
from shared.users.subject import PlanLicence, plan_of, service_of, user_of

DIRECT = "direct"
PURCHASE_LIMIT = "purchase_limit"


def provider_kind(ctx: StepContext) -> str:
    provider = provider_of(ctx.session, ctx.request.service_provider_id, ctx.request.customer_id)
    kind = ctx.session.scalar(select(ServiceProvider.kind).where(ServiceProvider.id == provider)) if provider else None
    return str(kind or "indirect")


def _enabled(sku: dict[str, Any]) -> int:
    return int((sku.get("prepaidUnits") or {}).get("enabled", 0))


def buy_seats(ctx: StepContext) -> Done | Wait | Blocked:
    if provider_kind(ctx) != DIRECT:
        return Done(skipped=True, note="an indirect reseller's seats are not bought by the engine")
    user = user_of(ctx)
    plan = plan_of(ctx, service_of(ctx, user))
    have = checks.skus_held_by(ctx.session, user.id, user.licences or [])
    licences = sorted((lic for lic in plan.licences if lic.sku_part_number not in have),
                      key=lambda lic: lic.sku_part_number)
    if not licences:
        return Done(skipped=True, note="the user already has every licence of the plan")
    customer_id = user.customer_id
    live = by_part_number(access.graph(ctx).subscribed_skus())
    # Part-number order: the SKU rows are locked in the order every accept locks them.
    store_skus(ctx.session, customer_id, sorted(live.values(), key=lambda s: str(s["skuPartNumber"])), ctx.now)
    ctx.session.flush()
    awaited: dict[str, list[str]] = dict(ctx.context.get("purchases_awaited") or {})
    for lic in licences:
        part = lic.sku_part_number
        if part in awaited:
            continue
        sku = live.get(part.upper())
        if sku is None and not lic.offer_id:
            raise StepFailed("sku_not_in_tenant", f"the tenant has no {part} subscription")
        decided = _decide(ctx, customer_id, lic, sku)
        if isinstance(decided, Blocked):
            return decided
        awaited[part] = decided
        ctx.remember(purchases_awaited=awaited)
    return _drive_and_wait(ctx, customer_id, awaited, live)


def _lock(ctx: StepContext, customer_id: str, part: str, sku: dict[str, Any] | None) -> tuple[int, int]:
    """Take the lock decisions for one SKU queue behind: (enabled, consumed) as last read from Graph."""
    locked = seats.lock_skus(ctx.session, customer_id, [part]).get(part) if sku is not None else None
    if locked is not None:
        return locked.total, locked.consumed
    # A SKU the tenant lacks (ordered through a cart): no SKU row to lock, so the customer's row.
    ctx.session.scalar(select(Customer.id).where(Customer.id == customer_id).with_for_update())
    return (_enabled(sku), int(sku.get("consumedUnits", 0))) if sku is not None else (0, 0)


def _decide(ctx: StepContext, customer_id: str, lic: PlanLicence, sku: dict[str, Any] | None) -> list[str] | Blocked:
    """The purchases this request waits for (its own included); Blocked when one is needed but not allowed."""
    part = lic.sku_part_number
    s = ctx.session
    total, consumed = _lock(ctx, customer_id, part, sku)
    held = seats.held_counts(s, customer_id).get(part, 0)  # read after the lock: sees the holds committed before
    rows = ledger.unfinished(s, customer_id, part, lock=True)
    _settle(ctx, rows, total)
    rows = [p for p in rows if p.state != ledger.VISIBLE]
    shortage = consumed + held - total - ledger.units_in_flight(rows)
    if shortage > 0 and ledger.of_request(s, customer_id, part, ctx.request.id) is None:
        owner = ctx.request.service_provider_id or provider_of(s, None, customer_id) or ""
        rules = policy.effective(s, customer_id, owner)
        today = ledger.bought_since(s, customer_id, ledger.start_of_day(ctx.now))
        units, why = policy.allowance(rules, today, shortage)
        if units <= 0:
            return Blocked(PURCHASE_LIMIT, f"{shortage} {part} seat(s) missing and {why}")
        # A SKU the tenant lacks is ordered (a cart), until some order of it has made it appear.
        order = sku is None and not any(p.kind == ledger.ORDER for p in rows)
        mine = ledger.join_or_create(s, customer_id=customer_id, sku_part_number=part,
                                     sku_id=str(sku.get("skuId")) if sku else None, units=units,
                                     request_id=ctx.request.id, now=ctx.now, batch_s=ctx.settings.purchase_batch_s,
                                     max_per_order=rules.max_units_per_order,
                                     kind=ledger.ORDER if order else ledger.QUANTITY, offer_id=lic.offer_id)
        if mine not in rows:
            rows.append(mine)
        ctx.notes.append(f"{units} {part} seat(s) to buy (purchase {mine.id})")
    return [p.id for p in rows]


def _settle(ctx: StepContext, rows: list[Purchase], graph_total: int) -> None:
    """Confirmed purchases Graph now shows become visible."""
    for p in rows:
        if p.state == ledger.CONFIRMED and graph_total >= p.expected_total:
            p.state, p.visible_at, p.updated_at = ledger.VISIBLE, ctx.now, ctx.now


def _drive_and_wait(ctx: StepContext, customer_id: str, awaited: dict[str, list[str]],
                    live: dict[str, dict[str, Any]]) -> Done | Wait | Blocked:
    tenant = access.tenant_id(ctx)
    pc = ctx.microsoft.partner_center(access.credential(ctx))
    waiting: list[str] = []
    for part, ids in sorted(awaited.items()):
        rows = sorted((p for p in (ctx.session.get(Purchase, i) for i in ids) if p is not None),
                      key=lambda p: (p.created_at, p.id))
        sku = live.get(part.upper())
        for p in rows:
            if p.state in (ledger.PENDING, ledger.SENT):
                if p.kind == ledger.ORDER:
                    blocked = _drive_order(ctx, pc, tenant, p, _enabled(sku) if sku else 0)
                elif sku is None:  # more of a SKU still on order: its subscription is not in Graph yet
                    break
                else:
                    blocked = _drive(ctx, pc, tenant, p, sku)
                if blocked is not None:
                    return blocked
            if p.state == ledger.FAILED:
                raise StepFailed("purchase_failed", f"buying {part} seats failed: {p.error}")
        _settle(ctx, rows, _enabled(sku) if sku else 0)
        waiting += [f"{p.units} {part}" for p in rows if p.state != ledger.VISIBLE]
    if waiting:
        return Wait(ctx.after(ctx.settings.purchase_poll_s),
                    f"bought seats not in Graph yet: {', '.join(waiting)}")
    bought = sum(len(ids) for ids in awaited.values())
    return Done(note=f"seats available ({bought} purchase(s) awaited)" if bought else "free seats available")


def _subscription(pc: PartnerCenter, tenant: str, sku: dict[str, Any], known: str | None) -> dict[str, Any]:
    """The Partner Center subscription behind a Graph SKU (Graph names its subscription ids)."""
    subs = pc.list_subscriptions(tenant)
    ids = {str(i).lower() for i in ([known] if known else sku.get("subscriptionIds") or [])}
    found = [s for s in subs if str(s.get("id", "")).lower() in ids and s.get("status", "active") == "active"]
    if not found:
        raise StepFailed("subscription_not_found",
                         f"Partner Center has no active subscription for {sku.get('skuPartNumber')}")
    return found[0]


def _drive(ctx: StepContext, pc: PartnerCenter, tenant: str, p: Purchase, sku: dict[str, Any]) -> Blocked | None:
    s = ctx.session
    s.refresh(p, with_for_update=True)
    fresh, sub = False, None
    if p.state == ledger.PENDING:
        sub = _subscription(pc, tenant, sku, None)
        p.subscription_id = str(sub["id"])
        p.from_quantity = int(sub.get("quantity") or 0)
        p.to_quantity = p.from_quantity + p.units
        p.expected_total = ledger.expected_total_after(s, p, _enabled(sku))
        p.ms_request_id = str(uuid.uuid4())
        p.state, p.sent_at, p.updated_at = ledger.SENT, ctx.now, ctx.now
        # Durable before the call: a lost answer or a dead worker finds the target and the request id.
        ctx.checkpoint(purchase_sent=p.id)
        fresh = True
    if p.state != ledger.SENT:
        return None
    target = int(p.to_quantity or 0)
    if sub is None:
        sub = _subscription(pc, tenant, sku, p.subscription_id)
    if not fresh and int(sub.get("quantity") or 0) >= target:
        _confirm(ctx, p, None)  # the earlier send went through; its answer was lost
        return None
    try:
        answer = pc.update_subscription_quantity(tenant, sub, target, str(p.ms_request_id))
    except Forbidden as exc:
        # Refused outright (no MCA): nothing was bought; the purchase waits for the agreement.
        p.state, p.ms_request_id, p.from_quantity, p.to_quantity, p.sent_at = ledger.PENDING, None, None, None, None
        p.updated_at = ctx.now
        ctx.note_error(exc)
        mca.remember(s, p.customer_id, mca.AgreementView(False, None, None), ctx.now)
        return Blocked(mca.MCA_NOT_SIGNED, "Partner Center refuses to sell without the Microsoft Customer Agreement")
    except BadRequest as exc:
        if int(_subscription(pc, tenant, sku, p.subscription_id).get("quantity") or 0) >= target:
            _confirm(ctx, p, None)
            return None
        p.state, p.error, p.updated_at = ledger.FAILED, str(exc)[:500], ctx.now
        ctx.note_error(exc)
        return None
    _confirm(ctx, p, answer)
    return None


def _drive_order(ctx: StepContext, pc: PartnerCenter, tenant: str, p: Purchase, graph_total: int) -> Blocked | None:
    """A new subscription: cart, then checkout, both under the purchase's MS-RequestId (a repeat replays)."""
    s = ctx.session
    s.refresh(p, with_for_update=True)
    if p.state == ledger.SENT and p.cart_id and _ordered(pc, tenant, p):
        _confirm(ctx, p, None)  # checked out by an earlier attempt whose answer was lost
        return None
    if p.state == ledger.PENDING:
        p.from_quantity, p.to_quantity = 0, p.units
        p.expected_total = ledger.expected_total_after(s, p, graph_total)
        p.ms_request_id = str(uuid.uuid4())
        p.state, p.sent_at, p.updated_at = ledger.SENT, ctx.now, ctx.now
        ctx.checkpoint(purchase_sent=p.id)
    if p.state != ledger.SENT:
        return None
    rid = str(p.ms_request_id)
    try:
        if not p.cart_id:
            p.cart_id = str(pc.create_cart(tenant, str(p.offer_id), p.units, rid)["id"])
            ctx.checkpoint(purchase_cart=p.cart_id)
        answer = pc.checkout_cart(tenant, p.cart_id, rid)
    except Forbidden as exc:
        p.state, p.ms_request_id, p.cart_id, p.sent_at, p.updated_at = ledger.PENDING, None, None, None, ctx.now
        ctx.note_error(exc)
        mca.remember(s, p.customer_id, mca.AgreementView(False, None, None), ctx.now)
        return Blocked(mca.MCA_NOT_SIGNED, "Partner Center refuses to sell without the Microsoft Customer Agreement")
    except BadRequest as exc:
        if _ordered(pc, tenant, p):  # checked out already (the answer lost, the replay window gone)
            _confirm(ctx, p, None)
            return None
        p.state, p.error, p.updated_at = ledger.FAILED, str(exc)[:500], ctx.now
        ctx.note_error(exc)
        return None
    order = (answer.get("orders") or [{}])[0]
    line = (order.get("lineItems") or [{}])[0]
    p.subscription_id = str(line.get("subscriptionId") or "") or None
    _confirm(ctx, p, {"orderId": order.get("id")})
    return None


def _ordered(pc: PartnerCenter, tenant: str, p: Purchase) -> bool:
    """Read back: Partner Center lists the ordered SKU for the customer (the order went through)."""
    return any(str((k.get("productSku") or {}).get("skuPartNumber", "")).upper() == p.sku_part_number.upper()
               for k in pc.subscribed_skus(tenant))


def _confirm(ctx: StepContext, p: Purchase, answer: dict[str, Any] | None) -> None:
    p.state, p.confirmed_at, p.updated_at = ledger.CONFIRMED, ctx.now, ctx.now
    p.order_id = str((answer or {}).get("orderId") or p.ms_request_id)
    detail = {"sku_part_number": p.sku_part_number, "units": p.units, "from_quantity": p.from_quantity,
              "to_quantity": p.to_quantity, "subscription_id": p.subscription_id,
              "ms_request_id": p.ms_request_id, "request_ids": list(p.request_ids)}
    audit.record(ctx.session, "engine", "purchase.confirmed", "purchase", p.id, detail)
    events.purchased(ctx.session, p, ctx.request)
