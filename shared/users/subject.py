"""The user a request works on, its Microsoft Online service row and its user plan."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import cast

from sqlalchemy import Executable, Table, and_, bindparam, inspect, select
from sqlalchemy.orm import Session

from shared.db.models import User, UserPlan, UserPlanLicence, UserService
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import StepFailed

MICROSOFT_ONLINE = "microsoft_online"
# What the user steps read of an Entra user (Graph's defaults leave out licences and usage location;
# createdDateTime tells the engine's own lost create from a stranger's account).
ENTRA_FIELDS = ("id", "userPrincipalName", "accountEnabled", "usageLocation", "assignedLicenses", "createdDateTime")


def user_of(ctx: StepContext) -> User:
    """The request's user. Read afresh by each step (the engine expires what an earlier one loaded),
    with its Microsoft Online service in the same statement: the steps that read one read the other,
    and service_of finds it here."""
    user_id = ctx.request.user_id
    held = ctx.session.identity_map.get(Session.identity_key(User, user_id)) if user_id else None
    if held is not None and not inspect(held).expired:
        return cast(User, held)  # this step read it already
    row = ctx.session.execute(_user_stmt(), {"user": user_id}).first() if user_id else None
    if row is None:
        raise StepFailed("user_missing", "the request's user no longer exists")
    user, service = row
    ctx.found[f"service:{user.id}"] = service
    return cast(User, user)


def service_of(ctx: StepContext, user: User) -> UserService | None:
    key = f"service:{user.id}"
    if key in ctx.found:  # read with the user by this step
        return cast(UserService | None, ctx.found[key])
    # One statement object, built once: SQLAlchemy memoizes its cache key on it (a select built per
    # call computes the key again, for every step of every user).
    return ctx.session.scalar(_service_stmt(), {"user": user.id})


@cache
def _user_stmt() -> Executable:
    return (select(User, UserService).outerjoin(UserService, and_(UserService.user_id == User.id,
                                                                  UserService.service == MICROSOFT_ONLINE))
            .where(User.id == bindparam("user")))


@cache
def _service_stmt() -> Executable:
    return select(UserService).where(UserService.user_id == bindparam("user"),
                                     UserService.service == MICROSOFT_ONLINE)


@dataclass(frozen=True, slots=True)
class PlanLicence:
    sku_part_number: str
    disabled_service_plans: list[str]
    offer_id: str | None = None  # the catalog item a direct reseller orders when the tenant lacks the SKU


@dataclass(frozen=True, slots=True)
class Plan:
    """A user plan as the steps read it: its SKUs in order, with the service plans they leave off."""

    id: str
    name: str
    licences: list[PlanLicence]


def plan_of(ctx: StepContext, service: UserService | None) -> Plan:
    return plan_by_id(ctx, ctx.params.get("user_plan_id") or (service.user_plan_id if service else None))


def plan_by_id(ctx: StepContext, plan_id: str | None) -> Plan:
    key = f"plan:{plan_id}"
    if key in ctx.memo:  # read by an earlier step of this message (StepContext.memo)
        return cast(Plan, ctx.memo[key])
    # One plain statement, not the ORM's two (plan, then its licences): it runs for every user.
    rows = ctx.session.connection().execute(_plan_stmt(), {"plan": plan_id}).all() if plan_id else []
    if not rows:
        raise StepFailed("plan_missing", "the request names no existing user plan")
    plan = ctx.memo[key] = Plan(rows[0][0], rows[0][1], [PlanLicence(sku, list(disabled or []), offer)
                                                         for _, _, sku, disabled, offer in rows if sku is not None])
    return plan


@cache
def _plan_stmt() -> Executable:
    plans, licences = cast(Table, UserPlan.__table__).c, cast(Table, UserPlanLicence.__table__).c
    return (select(plans.id, plans.name, licences.sku_part_number, licences.disabled_service_plans,
                   licences.offer_id)
            .select_from(cast(Table, UserPlan.__table__).outerjoin(
                cast(Table, UserPlanLicence.__table__), licences.user_plan_id == plans.id))
            .where(plans.id == bindparam("plan")).order_by(licences.position))


def linked_id(user: User) -> str:
    if not user.entra_id:
        raise StepFailed("user_not_linked", "the user has no Entra object yet (ensure_user did not run)")
    return user.entra_id
