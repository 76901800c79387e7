"""Purchase policies and the purchase ledger (direct resellers)."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.common import Input


class PolicyUpdate(Input):
    enabled: bool = Field(description="Whether the engine may buy missing seats for the customer")
    # Left out: no cap (null), as the guide's "restrict" is optional.
    max_units_per_day: int | None = Field(default=None, ge=1, le=100_000,
                                          description="Units a day, every SKU together; null: no cap")
    max_units_per_order: int | None = Field(default=None, ge=1, le=100_000,
                                            description="Units in one purchase; null: no cap")


class PolicyPublic(BaseModel):
    enabled: bool
    max_units_per_day: int | None
    max_units_per_order: int | None
    source: Literal["customer", "service_provider", "default"] = Field(
        description="Whose setting is in force: the customer's own, its reseller's default, or the default (off)")


class PurchasePublic(BaseModel):
    id: str
    customer_id: str
    kind: Literal["quantity", "order"]
    sku_part_number: str
    sku_id: str | None
    subscription_id: str | None
    offer_id: str | None
    units: int
    from_quantity: int | None
    to_quantity: int | None
    request_ids: list[str]
    ms_request_id: str | None
    order_id: str | None
    state: Literal["pending", "sent", "confirmed", "visible", "failed"]
    error: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    confirmed_at: datetime | None
    visible_at: datetime | None


class PurchaseList(BaseModel):
    items: list[PurchasePublic]


def present_policy(view: Any) -> dict[str, Any]:
    return PolicyPublic(**view.view()).model_dump(mode="json")


def present_purchases(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return PurchaseList(items=[PurchasePublic(**r) for r in rows]).model_dump(mode="json")
