"""Microsoft Online for a customer: read the tenant's licences live, then enable the chosen user plans."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import Agreement, PlanEnablement
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, StepBlocked
from shared.plans.skus import store_skus
from shared.tenants import access


def read_licences(ctx: StepContext) -> Done:
    conn = access.connection(ctx)  # never before Azure AD connected the tenant
    count = store_skus(ctx.session, conn.customer_id, access.graph(ctx, conn).subscribed_skus(), ctx.now)
    return Done(note=f"{count} SKU(s) read")


def enable_plans(ctx: StepContext) -> Done:
    access.connection(ctx)
    signed = ctx.session.scalar(select(Agreement.signed).where(Agreement.customer_id == ctx.request.customer_id))
    if not signed:  # check_mca runs first; this guards a retry started from here
        raise StepBlocked("mca_not_signed", "the customer's Microsoft Customer Agreement is not recorded")
    rows = {r.user_plan_id: r for r in ctx.session.scalars(select(PlanEnablement).where(
        PlanEnablement.customer_id == ctx.request.customer_id))}
    plans = list(ctx.params.get("plans") or [])
    for choice in plans:
        row = rows.get(choice["user_plan_id"])
        if row is None:
            row = PlanEnablement(customer_id=ctx.request.customer_id, user_plan_id=choice["user_plan_id"])
            ctx.session.add(row)
        row.hard_limit = choice.get("hard_limit")
        row.enabled = True
    return Done(note=f"{len(plans)} user plan(s) enabled")
