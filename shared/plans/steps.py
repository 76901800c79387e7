"""Microsoft Online for a customer: read the tenant's licences live, then enable the chosen user plans."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import Agreement, PlanEnablement, TenantSku, UserPlanLicence
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, StepBlocked, StepFailed
from shared.plans.skus import store_skus
from shared.purchases import buying
from shared.seats.free import missing_skus
from shared.tenants import access


def read_licences(ctx: StepContext) -> Done:
    conn = access.connection(ctx)  # never before Azure AD connected the tenant
    count = store_skus(ctx.session, conn.customer_id, access.graph(ctx, conn).subscribed_skus(), ctx.now)
    return Done(note=f"{count} SKU(s) read")


def _require_skus(ctx: StepContext, plan_ids: list[str]) -> None:
    """The plans' SKUs must be in the tenant (read_licences stored them just before): an onboarding chose
    its plans before the tenant's licences could be known."""
    ctx.session.flush()
    have = ctx.session.scalars(select(TenantSku.sku_part_number).where(
        TenantSku.customer_id == ctx.request.customer_id, (TenantSku.total > 0) | (TenantSku.consumed > 0)))
    licences = select(UserPlanLicence.sku_part_number).where(UserPlanLicence.user_plan_id.in_(plan_ids))
    if buying.provider_kind(ctx) == buying.DIRECT:  # a SKU with an offer is ordered when a user needs it
        licences = licences.where(UserPlanLicence.offer_id.is_(None))
    wanted = ctx.session.scalars(licences)
    missing = missing_skus(have, wanted)
    if missing:
        raise StepFailed("sku_not_in_tenant", f"the customer's tenant has no subscription for {', '.join(missing)}")


def enable_plans(ctx: StepContext) -> Done:
    access.connection(ctx)
    signed = ctx.session.scalar(select(Agreement.signed).where(Agreement.customer_id == ctx.request.customer_id))
    if not signed:  # check_mca runs first; this guards a retry started from here
        raise StepBlocked("mca_not_signed", "the customer's Microsoft Customer Agreement is not recorded")
    plans = list(ctx.params.get("plans") or [])
    _require_skus(ctx, [choice["user_plan_id"] for choice in plans])
    rows = {r.user_plan_id: r for r in ctx.session.scalars(select(PlanEnablement).where(
        PlanEnablement.customer_id == ctx.request.customer_id))}
    for choice in plans:
        row = rows.get(choice["user_plan_id"])
        if row is None:
            row = PlanEnablement(customer_id=ctx.request.customer_id, user_plan_id=choice["user_plan_id"])
            ctx.session.add(row)
        row.hard_limit = choice.get("hard_limit")
        row.enabled = True
    return Done(note=f"{len(plans)} user plan(s) enabled")
