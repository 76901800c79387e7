"""The user a request works on, its Microsoft Online service row and its user plan."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import User, UserPlan, UserService
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import StepFailed

MICROSOFT_ONLINE = "microsoft_online"
# What the user steps read of an Entra user (Graph's defaults leave out licences and usage location).
ENTRA_FIELDS = ("id", "userPrincipalName", "accountEnabled", "usageLocation", "assignedLicenses")


def user_of(ctx: StepContext) -> User:
    user = ctx.session.get(User, ctx.request.user_id) if ctx.request.user_id else None
    if user is None:
        raise StepFailed("user_missing", "the request's user no longer exists")
    return user


def service_of(ctx: StepContext, user: User) -> UserService | None:
    return ctx.session.scalar(select(UserService).where(UserService.user_id == user.id,
                                                        UserService.service == MICROSOFT_ONLINE))


def plan_of(ctx: StepContext, service: UserService | None) -> UserPlan:
    plan_id = ctx.params.get("user_plan_id") or (service.user_plan_id if service else None)
    plan = ctx.session.get(UserPlan, plan_id) if plan_id else None
    if plan is None:
        raise StepFailed("plan_missing", "the request names no existing user plan")
    return plan


def linked_id(user: User) -> str:
    if not user.entra_id:
        raise StepFailed("user_not_linked", "the user has no Entra object yet (ensure_user did not run)")
    return user.entra_id
