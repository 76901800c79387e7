"""The customer's Microsoft Customer Agreement."""
from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from pydantic import BaseModel, EmailStr, Field, StringConstraints, field_validator

from api.schemas.common import Input

PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                              pattern=r"^[^\x00-\x1f\x7f]*$")]


class AgreementCreate(Input):
    first_name: PersonName
    last_name: PersonName
    email: EmailStr
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9+()\- .]{3,32}$")] | None = None
    date_agreed: datetime | date | None = Field(default=None, description="When the customer accepted; "
                                                                          "default now; not in the future")

    @field_validator("date_agreed")
    @classmethod
    def _past(cls, v: datetime | date | None) -> datetime | date | None:
        if v is None:
            return v
        moment = v if isinstance(v, datetime) else datetime.combine(v, time(), UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        if moment > datetime.now(UTC):
            raise ValueError("date_agreed may not be in the future")
        if moment.year < 2000:
            raise ValueError("date_agreed is before the agreement existed")
        return v

    def agreed_iso(self) -> str | None:
        v = self.date_agreed
        if v is None:
            return None
        moment = v if isinstance(v, datetime) else datetime.combine(v, time(), UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ContactPublic(BaseModel):
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None = None


class AgreementPublic(BaseModel):
    signed: bool
    date_agreed: str | None
    primary_contact: ContactPublic | None


def present(view: Any) -> dict[str, Any]:
    return AgreementPublic.model_validate({"signed": view.signed, "date_agreed": view.date_agreed,
                                           "primary_contact": view.primary_contact}).model_dump(mode="json")
