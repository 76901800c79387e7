"""Customer plans and user plans."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.schemas.common import Input, Name, Text

# Microsoft's part numbers and service plan names: letters, digits, underscores and a few marks.
SkuName = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,119}$")]


class CustomerPlanCreate(Input):
    name: Name
    description: Text | None = None


class CustomerPlanPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    created_at: datetime


class CustomerPlanList(BaseModel):
    items: list[CustomerPlanPublic]


class LicenceSpec(Input):
    sku_part_number: SkuName = Field(examples=["O365_BUSINESS_PREMIUM"])
    disabled_service_plans: list[SkuName] = Field(default_factory=list, max_length=100)
    offer_id: str | None = Field(default=None, max_length=200, pattern=r"^[A-Za-z0-9]+:[A-Za-z0-9]+:[A-Za-z0-9]+$",
                                 examples=["CFQ7TTC0LCHC:0002:CFQ7TTC0NXP6"],
                                 description="The Partner Center catalog item (product:sku:availability) a direct "
                                             "reseller orders when the customer's tenant has no subscription for the "
                                             "SKU")


class UserPlanCreate(Input):
    name: Name
    description: Text | None = None
    licences: list[LicenceSpec] = Field(min_length=1, max_length=20)

    @field_validator("licences")
    @classmethod
    def _unique(cls, v: list[LicenceSpec]) -> list[LicenceSpec]:
        names = [lic.sku_part_number for lic in v]
        if len(set(names)) != len(names):
            raise ValueError("each SKU may appear once")
        return v


class LicencePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    sku_part_number: str
    disabled_service_plans: list[str]
    offer_id: str | None = None


class UserPlanPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str | None
    licences: list[LicencePublic]
    created_at: datetime


class UserPlanList(BaseModel):
    items: list[UserPlanPublic]


def present_customer_plan(row: Any) -> dict[str, Any]:
    return CustomerPlanPublic.model_validate(row).model_dump(mode="json")


def present_user_plan(row: Any) -> dict[str, Any]:
    return UserPlanPublic.model_validate(row).model_dump(mode="json")
