"""Requests: the durable record of work that touches Microsoft, with its steps."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from api.schemas.common import Id, PageQuery
from shared.requests import kinds

State = Literal["queued", "running", "waiting", "blocked", "succeeded", "failed", "cancelled"]
# Spelled out for the document; a test holds it equal to shared.requests.kinds.STEPS.
Kind = Literal["provider.azure_ad", "provider.microsoft_online", "customer.azure_ad", "customer.microsoft_online",
               "customer.onboard", "customer.sync", "user.provision", "user.deprovision"]


class StepPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    state: Literal["pending", "running", "waiting", "succeeded", "failed", "skipped"]
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: int | None = None
    error_code: str | None
    error_message: str | None


class RequestLinks(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    self_: str = Field(alias="self")


class RequestPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    state: State
    service_provider_id: str | None
    customer_id: str | None
    user_id: str | None
    parent_id: str | None
    params: dict[str, Any]
    current_step: str | None
    attempts: int
    blocked_reason: str | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    steps: list[StepPublic]
    result: dict[str, Any] | None = Field(
        default=None, description="What the request produced, on `GET /v1/requests/{id}`. A new tenant: "
        "`{tenant: {tenant_id, domain, created, admin_user_name, admin_password}}`; `admin_password` is shown "
        "once, to the first reseller or operator read after Partner Center created the tenant, then null")

    @computed_field  # type: ignore[prop-decorator]
    @property
    def failed_step(self) -> str | None:
        return next((s.name for s in self.steps if s.state == kinds.STEP_FAILED), None)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def links(self) -> RequestLinks:
        return RequestLinks.model_validate({"self": f"/v1/requests/{self.id}"})


class RequestList(BaseModel):
    items: list[RequestPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class RequestListQuery(PageQuery):
    state: State | None = None
    customer_id: Id | None = None
    kind: Kind | None = None
    user_id: Id | None = None
    parent_id: Id | None = None


class Accepted(BaseModel):
    """202 for work that also returns more than the request."""

    request: RequestPublic


def present(req: Any) -> dict[str, Any]:
    return RequestPublic.model_validate(req).model_dump(mode="json", by_alias=True)


def present_detail(detail: Any) -> dict[str, Any]:
    body = present(detail.request)
    body["result"] = detail.result
    return body
