"""Service providers (resellers) and their two services."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints, model_validator

from api.schemas.common import Id, Input, Name

Secret = Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"^[^\x00-\x1f\x7f]*$")]


# What the columns hold: Entra ids are GUIDs, 64 leaves room for a tenant's domain name instead.
PartnerId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64,
                                             pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")]


class PartnerCenterCreate(Input):
    tenant_id: PartnerId = Field(description="The reseller's own (partner) tenant id")
    client_id: PartnerId = Field(description="The partner app's client (application) id")
    client_secret: Secret = Field(description="Stored encrypted; never returned")
    refresh_token: Secret | None = Field(default=None, description="App+User refresh token (secure application "
                                                                   "model); stored encrypted; never returned")


class ServiceProviderCreate(Input):
    name: Name
    kind: Literal["indirect", "direct"] = "indirect"
    partner_center: PartnerCenterCreate


class PartnerCenterPublic(BaseModel):
    tenant_id: str
    client_id: str
    has_refresh_token: bool


class ServiceProviderPublic(BaseModel):
    id: str
    name: str
    kind: Literal["indirect", "direct"]
    partner_center: PartnerCenterPublic
    created_at: datetime


class CredentialsUpdate(Input):
    """A new client secret and/or App+User refresh token; both stored encrypted, never returned."""

    client_secret: Secret | None = Field(default=None, description="The partner app's new client secret")
    refresh_token: Secret | None = Field(default=None, description="A new App+User refresh token (secure "
                                                                   "application model)")

    @model_validator(mode="after")
    def _something(self) -> CredentialsUpdate:
        if self.client_secret is None and self.refresh_token is None:
            raise ValueError("give client_secret, refresh_token or both")
        return self


class CredentialsRotated(ServiceProviderPublic):
    resumed_request_ids: list[str] = Field(description="Requests that were blocked on the old credential "
                                                       "(partner_credentials_invalid) and run again now")


class ServiceProviderList(BaseModel):
    items: list[ServiceProviderPublic]


class AzureAdServiceUpdate(Input):
    customer_plans: list[Id] = Field(min_length=1, max_length=200,
                                     description="Customer plan ids the reseller offers (at least one)")


class MicrosoftOnlineServiceUpdate(Input):
    user_plans: list[Id] = Field(min_length=1, max_length=200,
                                 description="User plan ids the reseller offers (at least one)")


class ProviderServicePublic(BaseModel):
    service: Literal["azure_ad", "microsoft_online"]
    state: Literal["not_provisioned", "pending", "provisioning", "provisioned", "failed"]
    request_id: str | None = Field(description="The latest request for the service (it may still run, or have "
                                               "failed while the service stays provisioned)")
    plans: list[str] = Field(description="Customer plans (azure_ad) or user plans (microsoft_online) linked: the "
                                         "last good ones while a new request for the service runs")


class ProviderServiceList(BaseModel):
    items: list[ProviderServicePublic]


def present_rotated(rotated: Any) -> dict[str, Any]:
    return {**present(rotated.provider), "resumed_request_ids": rotated.resumed}


def present(row: Any) -> dict[str, Any]:
    return ServiceProviderPublic(
        id=row.id, name=row.name, kind=row.kind, created_at=row.created_at,
        partner_center=PartnerCenterPublic(tenant_id=row.pc_tenant_id, client_id=row.pc_client_id,
                                           has_refresh_token=row.pc_refresh_token_enc is not None),
    ).model_dump(mode="json")
