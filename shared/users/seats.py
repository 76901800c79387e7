"""reserve_seat: the plan is enabled, the hard limit holds, and a seat is held for every licence of the plan."""
from __future__ import annotations

from collections import Counter
from functools import cache

from sqlalchemy import Executable, bindparam, or_, select

from shared.db.models import PlanEnablement, SeatReservation, User
from shared.errors import StateConflict
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, StepFailed
from shared.plans import limits
from shared.plans.skus import store_skus
from shared.purchases import buying
from shared.seats import ledger
from shared.tenants import access
from shared.users import checks
from shared.users.subject import plan_of, service_of, user_of


def _check_hard_limit(ctx: StepContext, enablement: PlanEnablement, user: User) -> None:
    """shared.plans.limits' rule, for the key that created the request; one checker at a time per plan."""
    if enablement.hard_limit is None:
        return  # no limit: no need to know who asked (a query per user)
    try:
        limits.enforce(ctx.session, user.customer_id, Counter({enablement.user_plan_id: 1}),
                       {enablement.user_plan_id: enablement.hard_limit},
                       role=limits.role_of_key(ctx.session, ctx.request.created_by), exclude_user_ids=[user.id],
                       in_pipeline=True)
    except StateConflict as exc:
        raise StepFailed(exc.code, exc.detail) from None


# Built once (SQLAlchemy memoizes a statement's cache key on the statement object): they run for
# every user.
@cache
def _enablement_stmt() -> Executable:
    return select(PlanEnablement).where(PlanEnablement.customer_id == bindparam("customer"),
                                        PlanEnablement.user_plan_id == bindparam("plan"))


@cache
def _held_stmt() -> Executable:
    r = SeatReservation
    return select(r.sku_part_number).where(r.request_id == bindparam("req"),
                                           or_(r.state == ledger.HELD, r.state == ledger.CONSUMED))


def reserve_seat(ctx: StepContext) -> Done:
    user = user_of(ctx)
    service = service_of(ctx, user)
    plan = plan_of(ctx, service)
    enablement = ctx.session.scalar(_enablement_stmt(), {"customer": user.customer_id, "plan": plan.id})
    if enablement is None or not enablement.enabled:
        raise StepFailed("plan_not_enabled", f"user plan {plan.name} is not enabled for the customer")
    _check_hard_limit(ctx, enablement, user)
    wanted = [lic.sku_part_number for lic in plan.licences]
    have = set(ctx.session.scalars(_held_stmt(), {"req": ctx.request.id}))
    direct = buying.provider_kind(ctx) == buying.DIRECT
    if direct:
        # A direct reseller buys what is missing (buy_seats counts the holds): a seat the user already
        # has must not be held again, or it would be bought twice.
        have |= checks.skus_held_by(ctx.session, user.id, user.licences or [])
    missing = [sku for sku in wanted if sku not in have]
    if not missing:
        return Done(note="seats held since the request was accepted")
    # Held here (e.g. users of an onboarding request, accepted before the tenant's licences were known).
    # Held first, then the SKU rows locked and counted with this hold in them: the lock order of
    # every accept (seat holds, then SKU rows), so the two never deadlock. Refused, the step's
    # writes roll back, the hold with them.
    ledger.reserve(ctx.session, customer_id=user.customer_id, user_id=user.id, request_id=ctx.request.id,
                   sku_part_numbers=missing)
    ctx.session.flush()
    locked = ledger.lock_skus(ctx.session, user.customer_id, missing)
    if len(locked) < len(missing):
        conn = access.connection(ctx)
        store_skus(ctx.session, user.customer_id, access.graph(ctx, conn).subscribed_skus(), ctx.now)
        ctx.session.flush()
        locked = ledger.lock_skus(ctx.session, user.customer_id, missing)
    free = {s.sku_part_number: s.free for s in ledger.seats(ctx.session, user.customer_id)}
    orderable = {lic.sku_part_number for lic in plan.licences if lic.offer_id} if direct else set()
    for sku in missing:
        if sku not in locked and sku not in orderable:  # buy_seats orders an orderable one
            raise StepFailed("sku_not_in_tenant", f"the tenant has no {sku} subscription")
        if free.get(sku, 0) < 0 and not direct:  # this request's own hold is counted
            raise StepFailed("no_free_licences", f"no free {sku} seat in the tenant")
    return Done(note=f"held {len(missing)} seat(s)")
