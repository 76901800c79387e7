"""Users, their Microsoft Online service, provisioning answers and bulk."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, WithJsonSchema, model_validator

from api.schemas.common import Id, Input, PageQuery, QueryParams
from api.schemas.requests import RequestPublic
from shared.users import validation as v
from shared.users.rows import NewUser
from shared.users.service import UserInput, UserView

BULK_SCHEMA_MAX = 10_000  # the enforced limit is settings.bulk_max_users (default 1,000)

Upn = Annotated[str, StringConstraints(min_length=3, max_length=v.UPN_MAX), AfterValidator(v.normalise_upn)]
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=v.NAME_MAX),
                       AfterValidator(v.normalise_name)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=v.DISPLAY_NAME_MAX),
                        AfterValidator(v.normalise_name)]
# An enum in the document, so clients see the real list; upper case as ISO writes it.
Country = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(v.normalise_country),
                    WithJsonSchema({"type": "string", "enum": sorted(v.COUNTRIES)})]
Alias = Annotated[str, StringConstraints(min_length=3, max_length=254), AfterValidator(v.normalise_alias)]


class UserCreate(Input):
    upn: Upn = Field(description="local@domain; stored lower-case; unique per customer",
                     examples=["ada@contoso.com"])
    first_name: PersonName
    last_name: PersonName
    display_name: DisplayName | None = None
    usage_location: Country = Field(description="ISO 3166-1 alpha-2", examples=["GB"])
    aliases: list[Alias] = Field(default_factory=list, max_length=v.ALIASES_MAX)

    @model_validator(mode="after")
    def _aliases(self) -> UserCreate:
        self.aliases = [a for a in dict.fromkeys(self.aliases) if a != self.upn]
        return self

    def to_input(self) -> UserInput:
        return UserInput(upn=self.upn, first_name=self.first_name, last_name=self.last_name,
                         usage_location=self.usage_location, display_name=self.display_name,
                         aliases=list(self.aliases))


class BulkUserSpec(UserCreate):
    user_plan_id: Id | None = Field(default=None, description="Overrides the call's user_plan_id")


class UsersBulkCreate(Input):
    user_plan_id: Id | None = Field(default=None, description="The plan of every user that names none")
    users: list[BulkUserSpec] = Field(min_length=1, max_length=BULK_SCHEMA_MAX,
                                      description="At most BULK_MAX_USERS (1,000 by default); all or nothing")

    @model_validator(mode="after")
    def _every_user_has_a_plan(self) -> UsersBulkCreate:
        if self.user_plan_id is None and any(u.user_plan_id is None for u in self.users):
            raise ValueError("every user needs a user_plan_id (its own or the call's)")
        return self

    def plan_of(self, user: BulkUserSpec) -> str:
        plan = user.user_plan_id or self.user_plan_id
        assert plan is not None
        return plan


class ProvisionUpdate(Input):
    user_plan_id: Id
    reset_password: bool = Field(default=False, description="Set the temporary password on an account that "
                                                            "exists too (it must change it at the next sign-in); "
                                                            "without it an existing account keeps its password")


PasswordApplies = Literal["if_created", "always"]
_APPLIES = ("When `temporary_password` becomes the account's password: `if_created` only if the pipeline creates "
            "the account (an existing one keeps its own; see the finished request's `result.password`), "
            "`always` with reset_password")


class UserListQuery(PageQuery):
    upn: str | None = Field(None, max_length=113, pattern=r"^[^\x00-\x1f\x7f]*$", description="UPN prefix")
    state: str | None = Field(None, pattern=r"^[a-z_]{1,24}$")
    service_state: str | None = Field(None, pattern=r"^[a-z_]{1,16}$", description="Microsoft Online service state")
    user_plan_id: Id | None = None


class DeprovisionQuery(QueryParams):
    delete_user: bool = Field(False, description="Delete the Entra user instead of disabling it")


class UserServicePublic(BaseModel):
    state: str = Field(description="pending | provisioning | provisioned | deprovisioning | deprovisioned | failed")
    user_plan_id: str | None
    request_id: str | None


class UserPublic(BaseModel):
    id: str
    customer_id: str
    upn: str
    first_name: str | None
    last_name: str | None
    display_name: str
    usage_location: str | None
    aliases: list[str]
    state: str
    source: str = Field(description="local | imported (by the sync) | adopted (an account that existed, linked)")
    entra_id: str | None
    entra_upn: str | None
    entra_origin: str | None = Field(default=None, description="How the engine holds the Entra account: created, "
                                                               "adopted (it existed; linked under a reseller or "
                                                               "operator key) or synced (linked by the sync)")
    licences: list[str] = Field(description="SKU part numbers seen on the Entra user")
    created_at: datetime
    microsoft_online: UserServicePublic | None


class UserList(BaseModel):
    items: list[UserPublic]
    next_cursor: str | None


_WITHHELD = "Only in a replay (`Idempotent-Replayed: true`): why `temporary_password` is null"


class ProvisionAccepted(BaseModel):
    request: RequestPublic
    temporary_password: str | None = Field(
        description="Shown here only, once, and applies as `temporary_password_applies` says; null in a replay")
    temporary_password_applies: PasswordApplies = Field(description=_APPLIES)
    temporary_password_note: str | None = Field(default=None, description=_WITHHELD)


class ProvisionedUser(BaseModel):
    user: UserPublic
    request: RequestPublic
    temporary_password: str | None = Field(description="Shown once; null in a replay")
    temporary_password_applies: PasswordApplies = Field(default="if_created", description=_APPLIES)
    temporary_password_note: str | None = Field(default=None, description=_WITHHELD)


class BulkAccepted(BaseModel):
    requests: list[RequestPublic]
    items: list[ProvisionedUser]


def user_public(view: UserView) -> UserPublic:
    u, s = view.user, view.service
    return UserPublic(
        id=u.id, customer_id=u.customer_id, upn=u.upn, first_name=u.first_name, last_name=u.last_name,
        display_name=u.display_name, usage_location=u.usage_location, aliases=list(u.aliases or []),
        state=u.state, source=u.source, entra_id=u.entra_id, entra_upn=u.entra_upn,
        entra_origin=getattr(u, "entra_origin", None),
        licences=list(u.licences or []), created_at=u.created_at,
        microsoft_online=UserServicePublic(state=s.state, user_plan_id=s.user_plan_id, request_id=s.request_id)
        if s is not None else None)


def present(view: UserView) -> dict[str, Any]:
    return user_public(view).model_dump(mode="json")


def present_new_users(items: list[NewUser]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        request = RequestPublic.model_validate(item.request).model_dump(mode="json", by_alias=True)
        out.append({"user": present(UserView(item.user, item.service)), "request": request,
                    "temporary_password": item.temporary_password, "temporary_password_applies": "if_created"})
    return out


def present_bulk(items: list[NewUser]) -> dict[str, Any]:
    users = present_new_users(items)
    return {"requests": [u["request"] for u in users], "items": users}
