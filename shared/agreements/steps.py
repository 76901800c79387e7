"""The Microsoft Customer Agreement: read and shown (Azure AD), or required before plans (Microsoft Online)."""
from __future__ import annotations

from sqlalchemy import select

from shared.agreements.contact import contact_view
from shared.agreements.mca import MCA_NOT_SIGNED, is_mca
from shared.db.models import Agreement
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Blocked, Done
from shared.tenants import access


def refresh_agreement(ctx: StepContext) -> Agreement:
    """Partner Center's word on the MCA, stored on the customer's Agreement row."""
    conn = access.connection(ctx, connected=False)
    items = [i for i in ctx.microsoft.partner_center(access.credential(ctx)).get_agreements(conn.tenant_id)
             if is_mca(i)]
    row = ctx.session.scalar(select(Agreement).where(Agreement.customer_id == ctx.request.customer_id))
    if row is None:
        row = Agreement(customer_id=ctx.request.customer_id)
        ctx.session.add(row)
    row.signed = bool(items)
    if items:
        latest = max(items, key=lambda i: str(i.get("dateAgreed") or ""))
        row.date_agreed = latest.get("dateAgreed")
        row.primary_contact = contact_view(latest.get("primaryContact") or {})
    row.checked_at = ctx.now
    return row


def read_agreement(ctx: StepContext) -> Done:
    """Azure AD shows the agreement; not signed yet is information here, not a blocker."""
    row = refresh_agreement(ctx)
    return Done(note="MCA signed" if row.signed else "MCA not signed yet")


def check_mca(ctx: StepContext) -> Done | Blocked:
    """Plans are never enabled before the MCA is recorded; recording it through the API resumes this."""
    if not refresh_agreement(ctx).signed:
        return Blocked(MCA_NOT_SIGNED, "the customer's Microsoft Customer Agreement is not recorded in "
                       "Partner Center")
    return Done(note="MCA signed")
