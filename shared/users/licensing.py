"""assign_licences and remove_licences: read what the user has, change only the difference in one call, count seats."""
from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, select

from shared.db.models import TenantSku, User
from shared.microsoft.errors import InvalidUsageLocation, NoFreeLicences, NotFound
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, RetrySoon, StepFailed
from shared.pipeline.ports import Graph
from shared.plans.skus import by_part_number, disabled_plan_ids, grants_mailbox, store_skus
from shared.seats import ledger
from shared.seats.free import free_in_graph
from shared.tenants import access
from shared.users import adoption
from shared.users.replication import confirming, next_look
from shared.users.subject import ENTRA_FIELDS, Plan, linked_id, plan_by_id, plan_of, service_of, user_of


def _read_user(ctx: StepContext, graph: Graph, entra_id: str) -> dict[str, Any]:
    try:
        return graph.get_user(entra_id, select=ENTRA_FIELDS)
    except NotFound:
        if ctx.context.get("user_created") and confirming(ctx):
            raise RetrySoon(next_look(ctx), "the new user is not readable yet") from None
        raise StepFailed("user_not_found", f"Entra user {entra_id} does not exist") from None


def _current_licences(ctx: StepContext, graph: Graph, user: User) -> tuple[set[str], dict[str, Any] | None]:
    """SKU ids the user has: from ensure_user's read on a first attempt, read again on any retry
    (an earlier attempt may have assigned them before its answer was lost)."""
    known = ctx.context.get("entra_licences")
    if ctx.step.attempts <= 1 and known is not None:
        return set(known), None
    entra = _read_user(ctx, graph, linked_id(user))
    return {str(lic.get("skuId")).lower() for lic in entra.get("assignedLicenses") or []}, entra


@cache
def _skus_stmt() -> Executable:
    # Built once: SQLAlchemy memoizes a statement's cache key on the statement object.
    return select(TenantSku).where(TenantSku.customer_id == bindparam("customer"))


def _tenant_skus(ctx: StepContext, graph: Graph, plan: Plan, previous: Plan | None) -> dict[str, dict[str, Any]]:
    """The SKUs of the plan (and of the plan it replaces) as Graph describes them: from TenantSku when
    that is enough, else read live."""
    rows = {r.sku_part_number.upper(): r for r in ctx.session.scalars(
        _skus_stmt(), {"customer": ctx.request.customer_id})}
    wanted = [lic.sku_part_number.upper() for lic in [*plan.licences, *(previous.licences if previous else [])]]
    if all(p in rows for p in wanted) and not any(lic.disabled_service_plans for lic in plan.licences):
        return {p: {"skuId": rows[p].sku_id, "skuPartNumber": rows[p].sku_part_number,
                    "servicePlans": [{"servicePlanName": n} for n in rows[p].service_plans or []]} for p in wanted}
    skus = graph.subscribed_skus()
    store_skus(ctx.session, ctx.request.customer_id or "", skus, ctx.now)
    return by_part_number(skus)


def _unlicensed(ctx: StepContext, user: User, code: str, reason: str) -> StepFailed:
    """A seat is missing: say so, and when this request created the Entra user, that it is left unlicensed."""
    if ctx.context.get("user_created"):
        reason += (f"; the Entra user {user.entra_upn or user.upn} (id {user.entra_id}) this request created "
                   "exists without this licence")
    return StepFailed(code, reason)


def _assign(ctx: StepContext, graph: Graph, user: User, add: list[dict[str, Any]], remove: list[str]) -> None:
    try:
        graph.assign_licences(linked_id(user), add=add, remove=remove)
    except NoFreeLicences:
        raise _unlicensed(ctx, user, "no_free_licences", "Microsoft has no free seat for the licence") from None
    except NotFound:
        if ctx.context.get("user_created") and confirming(ctx):
            raise RetrySoon(next_look(ctx), "the new user is not licensable yet (replication)") from None
        raise
    except InvalidUsageLocation:
        # Linked users may lack a usage location; Graph refuses licences until it is set.
        graph.update_user(linked_id(user), {"usageLocation": user.usage_location})
        graph.assign_licences(linked_id(user), add=add, remove=remove)


def _previous_plan(ctx: StepContext, plan: Plan) -> Plan | None:
    previous = ctx.params.get("previous_user_plan_id")
    return plan_by_id(ctx, previous) if previous and previous != plan.id else None


def assign_licences(ctx: StepContext) -> Done:
    """Only where a seat is free; SKUs the user already has are skipped, so a repeat assigns nothing.

    A plan change assigns the new plan's licences and removes the old plan's licences the new plan
    lacks, in one assignLicense call. Seats were reserved against Microsoft's counts when the request
    was accepted (reserve_seat); Graph refusing for want of a seat fails the request with
    `no_free_licences`, naming the Entra user when this request created it.
    """
    user = user_of(ctx)
    plan = plan_of(ctx, service_of(ctx, user))
    previous = _previous_plan(ctx, plan)
    graph = access.graph(ctx)
    tenant_skus = _tenant_skus(ctx, graph, plan, previous)
    assigned, entra = _current_licences(ctx, graph, user)
    add, mailbox = [], False
    for lic in plan.licences:
        sku = tenant_skus.get(lic.sku_part_number.upper())
        if sku is None:
            raise _unlicensed(ctx, user, "sku_not_in_tenant", f"the tenant has no {lic.sku_part_number} subscription")
        disabled = disabled_plan_ids(sku, list(lic.disabled_service_plans or []))
        mailbox = mailbox or grants_mailbox(sku, disabled)
        if str(sku["skuId"]).lower() in assigned:
            continue
        if "prepaidUnits" in sku and free_in_graph(sku) < 1:
            raise _unlicensed(ctx, user, "no_free_licences", f"no free {lic.sku_part_number} seat in the tenant")
        add.append({"skuId": str(sku["skuId"]), "disabledPlans": disabled})
    kept = {lic.sku_part_number.upper() for lic in plan.licences}
    remove, removed = [], []
    for lic in previous.licences if previous else []:
        sku = tenant_skus.get(lic.sku_part_number.upper())
        if lic.sku_part_number.upper() not in kept and sku is not None and str(sku["skuId"]).lower() in assigned:
            remove.append(str(sku["skuId"]))
            removed.append(lic.sku_part_number)
    if add or remove:
        if entra is not None and "usageLocation" in entra and not entra["usageLocation"]:
            graph.update_user(linked_id(user), {"usageLocation": user.usage_location})
        _assign(ctx, graph, user, add, remove)
    if removed:
        ledger.licences_removed(ctx.session, user.customer_id, removed)
        ledger.release_skus(ctx.session, user.id, removed)
    ledger.consume(ctx.session, ctx.request.id)
    user.licences = sorted({*(user.licences or []), *(lic.sku_part_number for lic in plan.licences)} - set(removed))
    licensed_at = ctx.context.get("licensed_at") or ctx.now.isoformat()
    ctx.remember(mailbox_expected=mailbox, licensed_at=licensed_at)
    note = f"assigned {len(add)} licence(s), {len(plan.licences) - len(add)} already there"
    if removed:
        note += f", removed {', '.join(removed)} of the previous plan"
    if mailbox and add:
        # A mailbox for a licence assigned just now cannot exist yet: the first probe waits, durably.
        ctx.remember(mailbox_probes=0, mailbox_wait_since=licensed_at)
        return Done(note=note, not_before=ctx.after(ctx.settings.mailbox_first_delay_s))
    return Done(note=note)


def _plan_or_none(ctx: StepContext, user: User) -> Plan | None:
    service = service_of(ctx, user)
    try:
        return plan_of(ctx, service)
    except StepFailed:  # a user the sync linked without a matching plan holds none
        return None


def remove_licences(ctx: StepContext) -> Done:
    """Every licence the engine assigned (its consumed seats) and the user's plan's licences, in one call."""
    user = user_of(ctx)
    if not user.entra_id:
        return Done(skipped=True, note="the user has no Entra object")
    conn = access.connection(ctx)
    graph = access.graph(ctx, conn)
    try:
        entra = graph.get_user(user.entra_id, select=ENTRA_FIELDS)
        adoption.check_removal(ctx, graph, user, user.entra_id)
    except NotFound:
        return Done(skipped=True, note="the Entra user no longer exists")
    ctx.remember(removal_checked=True)
    plan = _plan_or_none(ctx, user)
    wanted = dict.fromkeys([*(lic.sku_part_number for lic in (plan.licences if plan else [])),
                            *ledger.assigned_by_engine(ctx.session, user.id)])
    tenant_skus = by_part_number(graph.subscribed_skus())
    assigned = {str(lic.get("skuId")).lower() for lic in entra.get("assignedLicenses") or []}
    remove, parts = [], []
    for part in wanted:
        sku = tenant_skus.get(part.upper())
        if sku is not None and str(sku["skuId"]).lower() in assigned:
            remove.append(str(sku["skuId"]))
            parts.append(part)
    if remove:
        graph.assign_licences(user.entra_id, add=[], remove=remove)
        ledger.licences_removed(ctx.session, user.customer_id, parts)
    user.licences = sorted(set(user.licences or []) - set(wanted))
    return Done(note=f"removed {len(remove)} licence(s)")
