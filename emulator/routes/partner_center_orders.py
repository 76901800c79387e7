"""Partner Center v1 purchases: a subscription's quantity (PATCH), carts and their checkout.

Every purchase is idempotent by MS-RequestId: the first answer to an operation is kept and a repeat of the
same request id replays it without applying the purchase again. Fault `lost_answer_rate` applies the
purchase but answers 500 (the caller cannot tell whether it happened); `purchase_delay_s` keeps new units
out of Graph's subscribedSkus for a while. Without a recorded MCA Partner Center refuses to sell (403).
"""
from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from .. import catalog
from ..errors import ApiError
from ..http import Request, Response, json_response, route
from ..tenant import Sku, Tenant, build_sku
from . import guard
from .partner_center import _customer_or_404, _invalid, subscription, subscription_id
from .shapes import RENDERERS

if TYPE_CHECKING:
    from ..app import Emulator

MCA_REQUIRED = ApiError(403, "13605", "The customer has not accepted the Microsoft Customer Agreement.",
                        target="CustomerAgreementNotAccepted")


def _sku_of_subscription(tenant: Tenant, sub_id: str) -> Sku:
    sku = next((s for s in tenant.skus.values() if subscription_id(tenant, s) == sub_id.lower()), None)
    if sku is None:
        raise ApiError(404, "800002", f"Subscription {sub_id} was not found.", target="SubscriptionNotFound")
    return sku


def _request_id(req: Request) -> str | None:
    return req.header(b"ms-requestid") or None


def _answer(em: Emulator, req: Request, status: int, body: dict[str, Any]) -> Response:
    if em.faults.answer_lost():
        em.stats.count("lost_answers", None)
        # Applied, but the caller sees a server error: it cannot tell whether the purchase happened.
        return RENDERERS["partner_center"](req, ApiError(500, "5000", "An internal server error occurred."))
    return json_response(body, status)


def _replay(em: Emulator, req: Request, tenant: Tenant, key: str | None) -> Response | None:
    if key is None or key not in tenant.purchase_answers:
        return None
    status, body = tenant.purchase_answers[key]
    return _answer(em, req, status, body)


async def update_subscription(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    body = req.json_object()
    quantity = body.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise _invalid("quantity must be a positive whole number.")
    request_id = _request_id(req)
    key = f"patch:{req.params['subscription'].lower()}:{request_id}" if request_id else None
    async with tenant.lock:
        replayed = _replay(em, req, tenant, key)
        if replayed is not None:
            return replayed
        sku = _sku_of_subscription(tenant, req.params["subscription"])
        if quantity < sku.units:
            # New commerce: decreases only inside the cancellation window; the emulator never allows them.
            raise _invalid(f"The quantity cannot be reduced from {sku.units} to {quantity} outside the "
                           "cancellation window.")
        if quantity > sku.units:
            if tenant.mca is None:
                raise MCA_REQUIRED
            now = em.clock.time()
            sku.buy(quantity, now + em.faults.purchase_delay_s, now)
            em.stats.count("purchases", tenant.tenant_id)
        answer = subscription(tenant, sku)
        if key is not None:
            tenant.purchase_answers[key] = (200, answer)
    return _answer(em, req, 200, answer)


def _line_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("lineItems")
    if not isinstance(items, list) or not items:
        raise _invalid("lineItems must list at least one item.")
    checked = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise _invalid("each line item must be an object.")
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise _invalid(f"lineItems[{n}].quantity must be a positive whole number.")
        catalog_item = str(item.get("catalogItemId") or "")
        if catalog.part_for_catalog_item(catalog_item) is None:
            raise ApiError(400, "800001", f"The catalog item {catalog_item or '(none)'} was not found.",
                           target="CatalogItemNotFound")
        checked.append({"id": item.get("id", n), "catalogItemId": catalog_item, "quantity": quantity,
                        "billingCycle": item.get("billingCycle", "monthly"),
                        "termDuration": item.get("termDuration", "P1M")})
    return checked


async def create_cart(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    items = _line_items(req.json_object())
    request_id = _request_id(req)
    key = f"cart:{request_id}" if request_id else None
    async with tenant.lock:
        replayed = _replay(em, req, tenant, key)
        if replayed is not None:
            return replayed
        cart: dict[str, Any] = {"id": secrets.token_hex(16), "lineItems": items, "status": "Active",
                "attributes": {"objectType": "Cart"}}
        tenant.carts[cart["id"]] = cart
        if key is not None:
            tenant.purchase_answers[key] = (201, cart)
    return json_response(cart, 201)


async def checkout_cart(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    cart_id = req.params["cart"]
    request_id = _request_id(req)
    key = f"checkout:{cart_id}:{request_id}" if request_id else None
    async with tenant.lock:
        replayed = _replay(em, req, tenant, key)
        if replayed is not None:
            return replayed
        cart = tenant.carts.get(cart_id)
        if cart is None:
            raise ApiError(404, "800003", f"Cart {cart_id} was not found.", target="CartNotFound")
        if cart["status"] != "Active":
            raise _invalid(f"Cart {cart_id} has already been checked out.")
        if tenant.mca is None:
            raise MCA_REQUIRED
        now = em.clock.time()
        lines = []
        for item in cart["lineItems"]:
            part = str(catalog.part_for_catalog_item(item["catalogItemId"]))
            sku = tenant.skus.get(part)
            if sku is None:
                sku = build_sku({"sku_part_number": part, "units": 0})
                tenant.skus[part] = tenant.sku_by_id[sku.sku_id] = sku
            sku.buy(sku.units + int(item["quantity"]), now + em.faults.purchase_delay_s, now)
            lines.append({"lineItemNumber": item["id"], "offerId": item["catalogItemId"],
                          "subscriptionId": subscription_id(tenant, sku), "quantity": item["quantity"]})
        cart["status"] = "Ordered"
        order = {"id": secrets.token_hex(16), "referenceCustomerId": tenant.tenant_id, "lineItems": lines,
                 "status": "completed", "attributes": {"objectType": "Order"}}
        answer = {"orders": [order], "orderErrors": [], "attributes": {"objectType": "CartCheckoutResult"}}
        em.stats.count("purchases", tenant.tenant_id)
        if key is not None:
            tenant.purchase_answers[key] = (201, answer)
    return _answer(em, req, 201, answer)


ROUTES = [
    route("PATCH", "/v1/customers/{customer}/subscriptions/{subscription}", update_subscription, "partner_center"),
    route("POST", "/v1/customers/{customer}/carts", create_cart, "partner_center"),
    route("POST", "/v1/customers/{customer}/carts/{cart}/checkout", checkout_cart, "partner_center"),
]
