"""The hard limit of a user plan: it binds what a customer key provisions itself; resellers and operators may pass it.

The guide: a hard limit restricts "the quantity of users that the customer can provision themselves".
Every path that adds users under a plan asks this module: the accept of one user, bulk, onboarding
and the pipeline's reserve_seat (the last word, for requests accepted before the limit was set).
A user counts against its plan while being provisioned and once provisioned, whoever provisioned
it (a user the sync imported counts too). Inside the pipeline a place is taken in reserve_seat's
order: there a user being provisioned counts once its own reserve_seat has passed, so requests
accepted together do not refuse one another.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from shared.auth.principal import CUSTOMER
from shared.db.models import ApiKey, PlanEnablement, ProvisioningRequest, RequestStep, User, UserService
from shared.errors import StateConflict
from shared.requests import kinds

COUNTED_STATES = ("provisioning", "provisioned")
MICROSOFT_ONLINE = "microsoft_online"


def binds(role: str | None) -> bool:
    """Only a customer's own key is bounded; a reseller's, an operator's or the engine's (no key) are not."""
    return role == CUSTOMER


def role_of_key(s: Session, key_id: str | None) -> str | None:
    """The role of the API key that created a request (None: the engine itself, or a key since deleted)."""
    return s.scalar(select(ApiKey.role).where(ApiKey.id == key_id)) if key_id else None


def in_use(s: Session, customer_id: str, plan_ids: Collection[str],
           exclude_user_ids: Collection[str] = (), *, in_pipeline: bool = False) -> dict[str, int]:
    """Users per plan that count against its hard limit: provisioning or provisioned (in the pipeline:
    provisioned, or provisioning past their own reserve_seat)."""
    if not plan_ids:
        return {}
    counted: ColumnElement[bool] = UserService.state.in_(COUNTED_STATES)
    if in_pipeline:
        past_reserve = exists().where(
            RequestStep.request_id == UserService.request_id, RequestStep.name == "reserve_seat",
            RequestStep.state == kinds.STEP_SUCCEEDED, ProvisioningRequest.id == UserService.request_id,
            ProvisioningRequest.state.in_([*kinds.ACTIVE_STATES, kinds.SUCCEEDED]))
        counted = or_(UserService.state == "provisioned", (UserService.state == "provisioning") & past_reserve)
    stmt = (select(UserService.user_plan_id, func.count())
            .join(User, User.id == UserService.user_id)
            .where(User.customer_id == customer_id, UserService.service == MICROSOFT_ONLINE,
                   UserService.user_plan_id.in_(list(plan_ids)), counted)
            .group_by(UserService.user_plan_id))
    if exclude_user_ids:
        stmt = stmt.where(UserService.user_id.not_in(list(exclude_user_ids)))
    return {plan: n for plan, n in s.execute(stmt) if plan}


def enforce(s: Session, customer_id: str, wanted: Counter[str], limits: dict[str, int | None], *,
            role: str | None, exclude_user_ids: Collection[str] = (), in_pipeline: bool = False) -> None:
    """409 plan_limit_reached when a customer key's users would pass a plan's hard limit.

    `exclude_user_ids`: the users being added (their own rows already say provisioning). The
    enablement rows under a limit are locked until commit, so two customers' accepts racing for the
    last place queue here; callers run it after their own writes, to keep that queue short.
    """
    if not binds(role):
        return
    limited = sorted(p for p in wanted if limits.get(p) is not None)
    if not limited:
        return
    s.execute(select(PlanEnablement.id).where(PlanEnablement.customer_id == customer_id,
                                              PlanEnablement.user_plan_id.in_(limited))
              .order_by(PlanEnablement.user_plan_id).with_for_update())
    used = in_use(s, customer_id, limited, exclude_user_ids, in_pipeline=in_pipeline)
    for plan in limited:
        limit = limits[plan]
        assert limit is not None
        if used.get(plan, 0) + wanted[plan] > limit:
            raise StateConflict("plan_limit_reached",
                                f"user plan {plan} allows the customer {limit} user(s) of its own; "
                                f"{used.get(plan, 0)} in use or pending, {wanted[plan]} more asked "
                                "(a reseller or operator key may go past it)",
                                user_plan_id=plan, hard_limit=limit, in_use=used.get(plan, 0))
