"""Customers, their tenant, services, licences and onboarding."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, EmailStr, Field, StringConstraints, field_validator, model_validator

from api.schemas.agreements import AgreementPublic
from api.schemas.common import ID_PATTERN, Id, Input, Name, PageQuery, QueryParams, Short
from api.schemas.requests import RequestPublic
from api.schemas.users import BULK_SCHEMA_MAX, BulkUserSpec, Country, ProvisionedUser, present_new_users
from shared.agreements.contact import contact_view
from shared.customers.microsoft_online import MicrosoftOnlineView
from shared.customers.onboard import Onboarding
from shared.customers.plans import PlanChoice
from shared.customers.service import CustomerView
from shared.customers.tenant import NewTenant
from shared.seats.ledger import SkuSeats

TenantId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
# The part before .onmicrosoft.com: what Partner Center accepts for a new tenant's initial domain.
DomainPrefix = Annotated[str, StringConstraints(strip_whitespace=True,
                                                pattern=r"^[A-Za-z0-9]{1,27}(\.onmicrosoft\.com)?$"),
                         AfterValidator(str.lower)]


class CustomerCreate(Input):
    name: Name
    service_provider_id: Id


class TenantPublic(BaseModel):
    tenant_id: str | None
    state: str = Field(description="connecting | connected | failed")
    company_name: str | None
    initial_domain: str | None
    verified_domains: list[str]
    gdap_status: str | None
    connected_at: datetime | None


class CustomerServicePublic(BaseModel):
    service: str
    state: str
    request_id: str | None


class CustomerPublic(BaseModel):
    id: str
    name: str
    service_provider_id: str
    customer_plan_id: str | None
    created_at: datetime
    tenant: TenantPublic | None


class CustomerDetail(CustomerPublic):
    services: list[CustomerServicePublic]
    agreement: AgreementPublic | None = Field(description="As last read from or recorded to Partner Center")


class CustomerList(BaseModel):
    items: list[CustomerPublic]
    next_cursor: str | None


class CustomerListQuery(PageQuery):
    service_provider_id: Id | None = None
    name: str | None = Field(None, max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$", description="Name prefix")


class TenantSearchQuery(QueryParams):
    q: str = Field(min_length=1, max_length=100, pattern=r"^\S[^\x00-\x1f\x7f]*$",
                   description="Start of a domain or company name")
    limit: int = Field(25, ge=1, le=100)


class TenantMatchPublic(BaseModel):
    tenant_id: str
    company_name: str | None
    domain: str | None


class TenantSearchList(BaseModel):
    items: list[TenantMatchPublic]


class Address(Input):
    """The customer's registered address, as Partner Center's Address resource needs it (sent camelCase)."""

    address_line1: Short
    address_line2: Short | None = None
    city: Short
    state: Short | None = Field(default=None, description="Required by Partner Center where the country has states")
    postal_code: Short
    country: Country


class NewTenantSpec(Input):
    """Partner Center's Create customer: the tenant's initial domain, the company and its billing contact."""

    domain: DomainPrefix = Field(description="Initial domain: <prefix> or <prefix>.onmicrosoft.com")
    company: Name
    email: EmailStr = Field(description="The billing contact's email")
    first_name: Short = Field(description="The billing contact")
    last_name: Short
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9+()\- .]{3,32}$")] | None = None
    address: Address
    culture: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}-[A-Z]{2}$")] = "en-US"
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")] = "en"

    def to_new_tenant(self) -> NewTenant:
        details = self.model_dump(exclude={"domain", "company", "email"}, exclude_none=True)
        return NewTenant(self.domain.removesuffix(".onmicrosoft.com"), self.company, str(self.email), details)


class _TenantChoice(Input):
    customer_plan_id: Id
    tenant_id: TenantId | None = Field(default=None, description="An existing tenant (from tenant-search)")
    new_tenant: NewTenantSpec | None = Field(default=None, description="Or a tenant Partner Center creates")

    @model_validator(mode="after")
    def _one_tenant(self) -> _TenantChoice:
        if (self.tenant_id is None) == (self.new_tenant is None):
            raise ValueError("give exactly one of tenant_id and new_tenant")
        return self


class AzureAdCustomerUpdate(_TenantChoice):
    pass


class PlanChoiceSpec(Input):
    user_plan_id: Id
    hard_limit: int | None = Field(default=None, ge=0, le=1_000_000,
                                   description="At most this many users provisioned or pending")


def _unique_plans(v: list[PlanChoiceSpec]) -> list[PlanChoiceSpec]:
    ids = [p.user_plan_id for p in v]
    if len(set(ids)) != len(ids):
        raise ValueError("each user plan may appear once")
    return v


class MicrosoftOnlineCustomerUpdate(Input):
    plans: list[PlanChoiceSpec] = Field(min_length=1, max_length=100)

    _check = field_validator("plans")(_unique_plans)

    def choices(self) -> list[PlanChoice]:
        return [PlanChoice(p.user_plan_id, p.hard_limit) for p in self.plans]


class EnabledPlanPublic(BaseModel):
    user_plan_id: str
    name: str
    hard_limit: int | None = Field(description="Users a customer key may provision itself; null: no limit")
    in_use: int = Field(description="Users provisioned or being provisioned under the plan")
    free_seats: int | None = Field(description="Seats left for the plan: its scarcest SKU, by the last counts read "
                                               "less seats held for pending requests; null for a plan without SKUs")


class MicrosoftOnlineCustomerPublic(BaseModel):
    state: str = Field(description="pending | provisioning | provisioned | failed")
    plans: list[EnabledPlanPublic] = Field(description="The user plans enabled for the customer")


def microsoft_online_public(view: MicrosoftOnlineView) -> dict[str, Any]:
    return MicrosoftOnlineCustomerPublic(
        state=view.state, plans=[EnabledPlanPublic(user_plan_id=p.user_plan_id, name=p.name, hard_limit=p.hard_limit,
                                                   in_use=p.in_use, free_seats=p.free_seats) for p in view.plans],
    ).model_dump(mode="json")


class OnboardCreate(_TenantChoice):
    plans: list[PlanChoiceSpec] = Field(min_length=1, max_length=100)
    users: list[BulkUserSpec] = Field(default_factory=list, max_length=BULK_SCHEMA_MAX,
                                      description="Each with the user_plan_id it gets (one of `plans`)")

    _check = field_validator("plans")(_unique_plans)

    @model_validator(mode="after")
    def _every_user_has_a_plan(self) -> OnboardCreate:
        if any(u.user_plan_id is None for u in self.users):
            raise ValueError("every user needs a user_plan_id")
        return self

    def choices(self) -> list[PlanChoice]:
        return [PlanChoice(p.user_plan_id, p.hard_limit) for p in self.plans]


class OnboardAccepted(BaseModel):
    request: RequestPublic = Field(description="The customer.onboard request (published now)")
    requests: list[RequestPublic] = Field(description="One user.provision request per user, started by the "
                                                      "pipeline once the onboarding has succeeded")
    items: list[ProvisionedUser]


class SkuLicencePublic(BaseModel):
    sku_part_number: str
    sku_id: str
    total: int
    consumed: int
    free: int = Field(description="total - consumed - reserved")
    reserved: int = Field(description="Seats held for accepted, unfinished provisioning requests")
    unused: int = Field(default=0, description="total - consumed: seats paid for and assigned to nobody (the "
                                               "engine never reduces seats it bought)")


class LicenceList(BaseModel):
    items: list[SkuLicencePublic]


def customer_public(view: CustomerView) -> dict[str, Any]:
    c, t = view.customer, view.tenant
    body: dict[str, Any] = {
        "id": c.id, "name": c.name, "service_provider_id": c.service_provider_id,
        "customer_plan_id": c.customer_plan_id, "created_at": c.created_at,
        "tenant": TenantPublic(tenant_id=t.tenant_id or None, state=t.state, company_name=t.company_name,
                               initial_domain=t.initial_domain, verified_domains=list(t.verified_domains or []),
                               gdap_status=t.gdap_status, connected_at=t.connected_at) if t else None}
    if view.services is None:
        return CustomerPublic(**body).model_dump(mode="json")
    a = view.agreement
    return CustomerDetail(
        **body, services=[CustomerServicePublic(service=s.service, state=s.state, request_id=s.request_id)
                          for s in view.services],
        agreement=AgreementPublic.model_validate({"signed": a.signed, "date_agreed": a.date_agreed,
                                                  "primary_contact": contact_view(a.primary_contact)}) if a else None,
    ).model_dump(mode="json")


def licence_public(seats: SkuSeats) -> SkuLicencePublic:
    return SkuLicencePublic(sku_part_number=seats.sku_part_number, sku_id=seats.sku_id, total=seats.total,
                            consumed=seats.consumed, free=max(seats.free, 0), reserved=seats.reserved,
                            unused=seats.unused)


def present_onboarding(result: Onboarding) -> dict[str, Any]:
    users = present_new_users(result.users)
    return {"request": RequestPublic.model_validate(result.request).model_dump(mode="json", by_alias=True),
            "requests": [u["request"] for u in users], "items": users}
