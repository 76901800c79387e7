"""Notification recipients of a customer, or its reseller's default."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, EmailStr, Field, field_validator

from api.schemas.common import Input

Event = Literal["provisioned", "failed", "blocked", "purchased"]


class RecipientsUpdate(Input):
    emails: list[EmailStr] = Field(max_length=50, description="Who is emailed; [] for nobody")
    events: list[Event] = Field(max_length=4, description="provisioned (with the temporary password, to a "
                                                          "customer's own recipients, when the engine set it), "
                                                          "failed, blocked (MCA, GDAP, seats), purchased "
                                                          "(seats bought for a direct reseller)")

    @field_validator("emails", "events")
    @classmethod
    def _once_each(cls, v: list[Any]) -> list[Any]:
        if len({str(x).lower() for x in v}) != len(v):
            raise ValueError("each value may appear once")
        return v


class RecipientsPublic(BaseModel):
    emails: list[str]
    events: list[Event]
    source: Literal["customer", "service_provider", "none"] = Field(
        description="Whose setting is in force: the customer's own, its reseller's default, or none")


def present(view: Any) -> dict[str, Any]:
    return RecipientsPublic(emails=view.emails, events=view.events, source=view.source).model_dump(mode="json")
