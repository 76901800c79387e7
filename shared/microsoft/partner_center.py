"""Partner Center REST v1 for one partner: customers, domains, agreements (MCA), SKUs, subscriptions,
CPV application consents."""
from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx

from shared.microsoft.caller import Caller
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import AgreementAlreadyExists, Conflict, NotFound

MCA = "MicrosoftCustomerAgreement"
SearchField = Literal["Domain", "CompanyName"]


class PartnerCenterClient:
    """Partner Center calls of one partner, throttled per partner in every process.

    All calls of one client object share an MS-CorrelationId; each operation has its own
    MS-RequestId, repeated on its retries (Partner Center's idempotency key).
    """

    def __init__(self, caller: Caller, credential: PartnerCredential, correlation_id: str | None = None) -> None:
        self._caller = caller
        self._credential = credential
        self._base = caller.apis["partner_center"].base_url
        self.correlation_id = correlation_id or str(uuid.uuid4())

    def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self._caller.call("partner_center", credential=self._credential,
                                 token_tenant=self._credential.tenant_id,
                                 limit_key=f"partner_center:{self._credential.tenant_id}", method=method,
                                 url=self._base + path, headers={"MS-CorrelationId": self.correlation_id}, **kw)

    def _items(self, path: str, **kw: Any) -> list[dict[str, Any]]:
        return list(self._call("GET", path, **kw).json().get("items") or [])

    def search_customers(self, field: SearchField, prefix: str, size: int = 50) -> list[dict[str, Any]]:
        """Customers whose domain or company name starts with `prefix` (case-insensitive)."""
        if field not in ("Domain", "CompanyName"):
            raise ValueError("field must be 'Domain' or 'CompanyName'")
        flt = json.dumps({"Field": field, "Value": prefix, "Operator": "starts_with"})
        return self._items("/customers", params={"size": size, "filter": flt})

    def get_customer(self, tenant_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/customers/{quote(tenant_id, safe='')}").json())

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        # Repeated with the same MS-RequestId, so Partner Center creates one tenant however often it runs.
        return dict(self._call("POST", "/customers", json=body, idempotent=True).json())

    def domain_exists(self, domain: str) -> bool:
        """True when the onmicrosoft.com domain is taken (HEAD answers 200), False when free (404)."""
        try:
            self._call("HEAD", f"/domains/{quote(domain, safe='')}")
        except NotFound:
            return False
        return True

    def mca_template_id(self) -> str:
        items = self._items("/agreements", params={"agreementType": MCA})
        for item in items:
            if item.get("agreementType", MCA) == MCA and item.get("templateId"):
                return str(item["templateId"])
        raise NotFound("Partner Center returned no Microsoft Customer Agreement template")

    def get_agreements(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        """The customer's recorded MCAs (an empty list when none is recorded)."""
        items = self._items(f"/customers/{quote(customer_tenant_id, safe='')}/agreements",
                            params={"agreementType": MCA})
        return [item for item in items if item.get("type", MCA) == MCA]

    def record_agreement(self, customer_tenant_id: str, primary_contact: dict[str, Any],
                         date_agreed: str | None = None) -> dict[str, Any] | None:
        """Record the customer's acceptance of the MCA; None when it was already recorded (600061)."""
        body = {
            "primaryContact": primary_contact,
            "templateId": self.mca_template_id(),
            "dateAgreed": date_agreed or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "type": MCA,
        }
        try:
            # Repeatable: a second recording answers 600061, which is success here.
            response = self._call("POST", f"/customers/{quote(customer_tenant_id, safe='')}/agreements",
                                  json=body, idempotent=True)
        except AgreementAlreadyExists:
            return None
        return dict(response.json()) if response.content else {}

    def subscribed_skus(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        return self._items(f"/customers/{quote(customer_tenant_id, safe='')}/subscribedskus")

    def list_subscriptions(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        return self.subscriptions(customer_tenant_id)

    def subscriptions(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        return self._items(f"/customers/{quote(customer_tenant_id, safe='')}/subscriptions")

    def update_subscription_quantity(self, customer_tenant_id: str, subscription: dict[str, Any], quantity: int,
                                     request_id: str) -> dict[str, Any]:
        """Set a subscription's quantity (a purchase when it grows). `request_id` is the purchase's MS-RequestId:
        Partner Center applies one id once, so re-sending after an ambiguous failure cannot buy twice."""
        body = {**subscription, "quantity": quantity}
        sub_id = quote(str(subscription["id"]), safe="")
        path = f"/customers/{quote(customer_tenant_id, safe='')}/subscriptions/{sub_id}"
        return dict(self._call("PATCH", path, json=body, idempotent=True, request_id=request_id).json())

    def create_cart(self, customer_tenant_id: str, catalog_item_id: str, quantity: int,
                    request_id: str) -> dict[str, Any]:
        """A cart with one line item (monthly billing, one-month term)."""
        body = {"lineItems": [{"id": 0, "catalogItemId": catalog_item_id, "quantity": quantity,
                               "billingCycle": "monthly", "termDuration": "P1M"}]}
        return dict(self._call("POST", f"/customers/{quote(customer_tenant_id, safe='')}/carts", json=body,
                               idempotent=True, request_id=request_id).json())

    def checkout_cart(self, customer_tenant_id: str, cart_id: str, request_id: str) -> dict[str, Any]:
        """Check a cart out: the order (with its subscriptions) is in the answer's `orders`."""
        path = f"/customers/{quote(customer_tenant_id, safe='')}/carts/{quote(cart_id, safe='')}/checkout"
        return dict(self._call("POST", path, json={}, idempotent=True, request_id=request_id).json())

    def grant_application_consent(self, customer_tenant_id: str, application_id: str,
                                  grants: Sequence[tuple[str, str]]) -> bool:
        """CPV consent: the app gets `grants` ((resource app id, comma-separated permissions) pairs) in the
        customer tenant. True when granted now, False when it was already there (409)."""
        body = {"applicationId": application_id,
                "applicationGrants": [{"enterpriseApplicationId": app, "scope": scope} for app, scope in grants]}
        try:
            # Repeatable: a second consent answers 409, which is success here.
            self._call("POST", f"/customers/{quote(customer_tenant_id, safe='')}/applicationconsents", json=body,
                       idempotent=True)
        except Conflict:
            return False
        return True

    def check_connection(self) -> None:
        """Sign in and make one cheap call; raises AuthFailed, Forbidden, ... when the connection is wrong."""
        self._call("GET", "/agreements", params={"agreementType": MCA})
