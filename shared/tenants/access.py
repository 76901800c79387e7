"""The customer's tenant and Microsoft clients for it, as a step needs them."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import TenantConnection
from shared.microsoft.credentials import PartnerCredential
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import StepFailed
from shared.pipeline.ports import Exchange, Graph
from shared.providers.credentials import partner_credential, provider_of

CONNECTED = "connected"


def credential(ctx: StepContext) -> PartnerCredential:
    req = ctx.request
    return partner_credential(ctx.session, provider_of(ctx.session, req.service_provider_id, req.customer_id))


def connection(ctx: StepContext, *, connected: bool = True) -> TenantConnection:
    conn = ctx.session.scalar(select(TenantConnection).where(TenantConnection.customer_id == ctx.request.customer_id))
    if conn is None or (connected and conn.state != CONNECTED):
        raise StepFailed("tenant_not_connected", "the customer's tenant is not connected (Azure AD service)")
    return conn


def graph(ctx: StepContext, conn: TenantConnection | None = None) -> Graph:
    conn = conn or connection(ctx)
    return ctx.microsoft.graph(credential(ctx), conn.tenant_id)


def exchange(ctx: StepContext, conn: TenantConnection | None = None) -> Exchange:
    conn = conn or connection(ctx)
    return ctx.microsoft.exchange(credential(ctx), conn.tenant_id)
