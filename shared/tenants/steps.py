"""Customer-level tenant steps: connect the tenant (existing or new, with the app's CPV consent), check GDAP
and its roles, refresh it (sync)."""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy import select

from shared.db.models import Customer, TenantConnection
from shared.microsoft.errors import AuthFailed, ConsentMissing, CredentialsRejected, Forbidden, NotFound
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Blocked, Done, RetrySoon, StepFailed, Wait
from shared.tenants import access, consent, denials, gdap, new_tenant, roles
from shared.tenants.domains import refresh_domains

# A manual sync asked for while a scheduled one runs tries again after this.
SYNC_BUSY_RETRY_S = 30.0


def _connection_row(ctx: StepContext) -> TenantConnection:
    conn = ctx.session.scalar(select(TenantConnection).where(TenantConnection.customer_id == ctx.request.customer_id))
    if conn is None:
        conn = TenantConnection(customer_id=ctx.request.customer_id, tenant_id="", state="connecting")
        ctx.session.add(conn)
    return conn


def _create_tenant(ctx: StepContext) -> str:
    """Create the tenant once: its id is made durable as soon as Partner Center answers, and with it the
    admin credentials of the answer, encrypted (never in the context, a log or a task result)."""
    created = ctx.context.get("created_tenant_id")
    if created:
        return str(created)
    if ctx.context.get("tenant_create_sent_at"):
        # The answer of an earlier create was lost; creating again could make a second tenant.
        raise StepFailed("tenant_create_uncertain", "an earlier tenant creation may have succeeded; "
                         "search Partner Center and connect the tenant by id")
    ctx.checkpoint(tenant_create_sent_at=ctx.now.isoformat())
    spec = ctx.params["new_tenant"]
    answer = ctx.microsoft.partner_center(access.credential(ctx)).create_customer(new_tenant.partner_center_body(spec))
    tenant_id = str((answer.get("companyProfile") or {}).get("tenantId") or answer["id"])
    domain = str((answer.get("companyProfile") or {}).get("domain") or new_tenant.initial_domain(spec)).lower()
    admin = new_tenant.keep_admin_credentials(ctx.session, ctx.request.id, answer, domain)
    ctx.checkpoint(created_tenant_id=tenant_id, created_tenant_domain=domain, tenant_admin_user_name=admin)
    return tenant_id


def connect_tenant(ctx: StepContext) -> Done | Wait | Blocked:
    """Connect the tenant: Partner Center knows it, the app's consent is granted there and in effect (a durable
    timer while it propagates), its domains are read."""
    cred = access.credential(ctx)
    new = bool(ctx.params.get("new_tenant")) and not ctx.params.get("tenant_id")
    tenant_id = _create_tenant(ctx) if new else str(ctx.params.get("tenant_id") or "")
    if not tenant_id:
        raise StepFailed("tenant_missing", "neither tenant_id nor new_tenant was given")
    try:
        customer = ctx.microsoft.partner_center(cred).get_customer(tenant_id)
    except NotFound:
        raise StepFailed("tenant_not_found", f"Partner Center has no customer tenant {tenant_id} for {cred.app}: "
                         "check the tenant id, or have the customer accept the reseller relationship "
                         "invitation, then connect again") from None
    profile = customer.get("companyProfile") or {}
    conn = _connection_row(ctx)
    conn.tenant_id = tenant_id
    conn.company_name = profile.get("companyName") or conn.company_name
    conn.initial_domain = (profile.get("domain") or conn.initial_domain or "").lower() or None
    consent.grant(ctx, cred, conn)
    try:
        # The first call with a token for the tenant: it tells whether the consent is in effect yet.
        refresh_domains(conn, ctx.microsoft.graph(cred, tenant_id))
    except ConsentMissing as exc:
        # A new tenant may also refuse tokens for its first minutes: it gets the longer of both waits.
        deadline = max(ctx.settings.consent_deadline_s, ctx.settings.tenant_ready_deadline_s if new else 0.0)
        return consent.not_yet(ctx, cred, exc, deadline_s=deadline)
    except CredentialsRejected:
        raise  # the reseller's credential, not the tenant: blocked by the engine (shared.tenants.denials)
    except (AuthFailed, Forbidden) as exc:
        ctx.note_error(exc)
        if new:
            # A new tenant refuses tokens for a few minutes: a durable timer, not a held worker.
            if ctx.seconds_since(ctx.context.get("tenant_create_sent_at")) > ctx.settings.tenant_ready_deadline_s:
                raise StepFailed("tenant_not_ready", "the new tenant still refuses sign-in") from None
            return Wait(ctx.after(ctx.settings.tenant_ready_poll_s), "the new tenant is not ready for sign-in yet")
        ctx.remember(domains_pending=True)  # without GDAP Graph refuses; check_gdap reads them later
    customer_row = ctx.session.get(Customer, ctx.request.customer_id)
    if customer_row is not None and ctx.params.get("customer_plan_id"):
        customer_row.customer_plan_id = ctx.params["customer_plan_id"]
    return Done(note=f"tenant {tenant_id} ({conn.initial_domain})")


def check_gdap(ctx: StepContext) -> Done | Blocked:
    """An active GDAP relationship granting the roles the work needs (users, licences, aliases if asked);
    a relationship ending within two weeks is reported in the step's note."""
    cred = access.credential(ctx)
    conn = access.connection(ctx, connected=False)
    found = gdap.read(ctx.microsoft.graph(cred, cred.tenant_id), conn.tenant_id)
    conn.gdap_status, conn.gdap_roles, conn.gdap_ends_at = found.status, found.roles, found.ends
    if not found.active:
        statuses = ", ".join(sorted({r.status for r in found.relationships})) or "none"
        return denials.blocked(denials.GDAP_MISSING, f"{cred.app} has no active GDAP relationship with tenant "
                                                     f"{conn.tenant_id} ({statuses})")
    missing = found.missing(gdap.needs_of(ctx.session, ctx.request, ctx.step.name))
    if missing:
        return denials.blocked(denials.GDAP_ROLES_MISSING,
                               f"{cred.app}: the GDAP relationship with tenant {conn.tenant_id} does not grant "
                               f"{gdap.describe_missing(missing)}")
    if ctx.context.get("domains_pending") or not conn.initial_domain:
        refresh_domains(conn, ctx.microsoft.graph(cred, conn.tenant_id))
        ctx.remember(domains_pending=False)
    conn.state = access.CONNECTED
    conn.connected_at = conn.connected_at or ctx.now
    notes = [f"GDAP active ({', '.join(roles.names(found.roles))})"]
    if not roles.ALIASES.met_by(found.roles):
        notes.append(f"{roles.ALIASES.role} is not granted: aliases will wait for it")
    expiring = found.expiring(ctx.now)
    if expiring:
        notes.append(gdap.expiry_note(expiring, ctx.now))
    return Done(note="; ".join(notes))


def sync_tenant(ctx: StepContext) -> Done:
    """A customer.sync request: one run of the sync engine (domains, SKUs, users), named by the request.

    The run row carries the request's id, so a redelivered step answers from it instead of syncing twice.
    """
    from shared.sync.engine import run_sync  # the sync capability owns the run; imported where used

    conn = access.connection(ctx)
    result = run_sync(conn.customer_id, trigger="manual", run_id=ctx.request.id,
                      full=bool(ctx.params.get("full")), microsoft=cast(Any, ctx.microsoft))
    if result.state == "failed":
        raise StepFailed("sync_failed", result.error or "the sync failed")
    if not result.ran:
        raise RetrySoon(SYNC_BUSY_RETRY_S, "another sync of this customer is running")
    return Done(note=f"sync: {result.created} created, {result.updated} updated, {result.removed} removed")
