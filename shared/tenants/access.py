"""The customer's tenant and Microsoft clients for it, as a step needs them."""
from __future__ import annotations

from functools import cache
from typing import cast

from sqlalchemy import Executable, Table, bindparam, select

from shared.db.models import ServiceProvider, TenantConnection
from shared.microsoft.credentials import PartnerCredential
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import StepFailed
from shared.pipeline.ports import Exchange, Graph
from shared.providers.credentials import partner_credential, provider_of

CONNECTED = "connected"


def credential(ctx: StepContext) -> PartnerCredential:
    """The reseller's credential, read once per message (see StepContext.memo), unless the session holds
    the provider itself (a step that changes it sees its change)."""
    req = ctx.request
    provider = provider_of(ctx.session, req.service_provider_id, req.customer_id)
    if provider is None or (ServiceProvider, (provider,), None) in ctx.session.identity_map:
        return partner_credential(ctx.session, provider)
    key = f"credential:{provider}"
    found = ctx.memo.get(key)
    if found is None:
        found = ctx.memo[key] = partner_credential(ctx.session, provider)
    return cast(PartnerCredential, found)


def connection(ctx: StepContext, *, connected: bool = True) -> TenantConnection:
    conn = ctx.session.scalar(_connection_stmt(), {"customer": ctx.request.customer_id})
    if conn is None or (connected and conn.state != CONNECTED):
        raise StepFailed("tenant_not_connected", "the customer's tenant is not connected (Azure AD service)")
    if conn.state == CONNECTED and conn.tenant_id:
        ctx.memo[f"tenant:{conn.customer_id}"] = conn.tenant_id  # what tenant_id() would read next
    return conn


def tenant_id(ctx: StepContext) -> str:
    """The connected tenant's id, in one plain statement once per message (every Graph or Exchange call
    starts here). No chain changes a tenant's connection after a step that used it (connect_tenant comes
    first), so the steps run on after the first that asks share its answer (StepContext.memo)."""
    if ctx.session.dirty or ctx.session.new:  # a connection this step changed: as the session sees it
        return connection(ctx).tenant_id
    key = f"tenant:{ctx.request.customer_id}"
    found = ctx.memo.get(key)
    if found is not None:
        return cast(str, found)
    row = ctx.session.connection().execute(_tenant_stmt(), {"customer": ctx.request.customer_id}).first()
    if row is None or row[1] != CONNECTED or not row[0]:
        raise StepFailed("tenant_not_connected", "the customer's tenant is not connected (Azure AD service)")
    found = ctx.memo[key] = str(row[0])
    return found


def graph(ctx: StepContext, conn: TenantConnection | None = None) -> Graph:
    return ctx.microsoft.graph(credential(ctx), conn.tenant_id if conn is not None else tenant_id(ctx))


def exchange(ctx: StepContext, conn: TenantConnection | None = None) -> Exchange:
    return ctx.microsoft.exchange(credential(ctx), conn.tenant_id if conn is not None else tenant_id(ctx))


@cache
def _connection_stmt() -> Executable:
    # Built once: SQLAlchemy memoizes a statement's cache key on the statement object.
    return select(TenantConnection).where(TenantConnection.customer_id == bindparam("customer"))


@cache
def _tenant_stmt() -> Executable:
    t = cast(Table, TenantConnection.__table__).c
    return select(t.tenant_id, t.state).where(t.customer_id == bindparam("customer"))
