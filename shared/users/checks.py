"""The checks before anything is sent to Microsoft: plan enabled, hard limit, free seats (indirect resellers)."""

# The statements are built once (bound parameters, `expanding` lists) and run on the session's
# connection without the ORM layers: they run for every accepted user.
from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ARRAY, Executable, String, any_, bindparam, func, select
from sqlalchemy.orm import Session

from shared.customers.context import CustomerContext
from shared.customers.licences import refresh_skus
from shared.db.models import (
    PlanEnablement,
    SeatHold,
    SeatReservation,
    TenantSku,
    User,
    UserPlanLicence,
    UserService,
)
from shared.db.types import utcnow
from shared.errors import ServiceError, StateConflict
from shared.seats import ledger

# A user under a plan "uses" a place against its hard limit while being provisioned and once provisioned.
COUNTED_STATES = ("provisioning", "provisioned")
INDIRECT = "indirect"


@dataclass(frozen=True)
class PlanRules:
    """The wanted plans as the customer has them enabled: hard limits and SKU part numbers."""

    limits: dict[str, int | None]
    skus: dict[str, list[str]]


def enabled_plans(s: Session, customer_id: str, wanted: Collection[str]) -> PlanRules:
    """409 plan_not_enabled unless every wanted plan is enabled for the customer (one query, no lock)."""
    rows = s.connection().execute(_enabled_stmt(), {"customer_id": customer_id, "plans": list(wanted)})
    return plan_rules(wanted, rows)


def plan_rules(wanted: Collection[str], rows: Iterable[tuple[str | None, int | None, str | None]]) -> PlanRules:
    """From (plan, hard limit, SKU) rows of the enabled plans (a plan without rows is not enabled):
    409 plan_not_enabled for any wanted plan missing."""
    limits: dict[str, int | None] = {}
    skus: dict[str, list[str]] = {}
    for plan, limit, sku in rows:
        if plan is None:
            continue
        limits[plan] = limit
        skus.setdefault(plan, [])
        if sku:
            skus[plan].append(sku)
    missing = [p for p in wanted if p not in limits]
    if missing:
        raise StateConflict("plan_not_enabled", f"user plan(s) {', '.join(missing)} are not enabled for the customer",
                            user_plan_ids=missing)
    return PlanRules(limits, skus)


def within_limits(s: Session, customer_id: str, wanted: Counter[str], limits: dict[str, int | None],
                  exclude_user_ids: Collection[str] = ()) -> None:
    """409 plan_limit_reached when the wanted users would pass a plan's hard limit.

    The enablement rows under a limit are locked until commit, so two accepts racing for the last
    place queue here; call it after the call's own writes, to keep that queue short.
    """
    limited = sorted(p for p in wanted if limits.get(p) is not None)
    if not limited:
        return
    s.execute(select(PlanEnablement.id).where(PlanEnablement.customer_id == customer_id,
                                              PlanEnablement.user_plan_id.in_(limited))
              .order_by(PlanEnablement.user_plan_id).with_for_update())
    used = plans_in_use(s, customer_id, limited, exclude_user_ids)
    for plan in limited:
        limit = limits[plan]
        assert limit is not None
        if used.get(plan, 0) + wanted[plan] > limit:
            raise StateConflict("plan_limit_reached",
                                f"user plan {plan} allows {limit} user(s); {used.get(plan, 0)} in use or pending, "
                                f"{wanted[plan]} more asked", user_plan_id=plan, hard_limit=limit,
                                in_use=used.get(plan, 0))


def plans_in_use(s: Session, customer_id: str, plan_ids: Collection[str],
                 exclude_user_ids: Collection[str] = ()) -> dict[str, int]:
    stmt = (select(UserService.user_plan_id, func.count())
            .join(User, User.id == UserService.user_id)
            .where(User.customer_id == customer_id, UserService.user_plan_id.in_(list(plan_ids)),
                   UserService.state.in_(COUNTED_STATES))
            .group_by(UserService.user_plan_id))
    if exclude_user_ids:
        stmt = stmt.where(UserService.user_id.not_in(list(exclude_user_ids)))
    return {plan: n for plan, n in s.execute(stmt) if plan}


log = logging.getLogger(__name__)

# Before refusing for want of seats, counts older than this are read again from Microsoft.
RECOUNT_AFTER = timedelta(seconds=5)


class NeedsExclusiveLock(Exception):
    """Under a shared lock the seats left came within the safety margin: run again exclusively."""


def check_seats(s: Session, ctx: CustomerContext, needed: Counter[str], *, own_held: bool = False,
                exclusive: bool = True) -> None:
    """409 no_free_licences unless every SKU has enough free seats (indirect resellers only).

    free = Microsoft's units - consumed - seats held for pending requests, counted under a lock on
    the SKU rows, held until commit (call this last). `own_held`: the call already wrote its own
    reservations, so they are in the count and must fit in it.

    Exclusive (FOR UPDATE): accepts for the customer queue one behind the other, so two cannot
    both take the last seat. Shared (FOR SHARE): accepts for one user each run side by side; one
    cannot see the others' uncommitted reservations, so it may only go on while more seats than
    transactions can be open at once (PostgreSQL's max_connections) would still be free; closer
    to the end it raises NeedsExclusiveLock and the caller runs again exclusively. Exclusive
    lockers (bulk, the last seats, the pipeline's consume) wait for the shared ones and see them.
    A customer with no SKU rows yet has them read live once, and a refusal is only given on counts
    read within RECOUNT_AFTER (a reseller who just bought seats is not refused on old numbers).
    """
    if ctx.provider_kind != INDIRECT or not needed:
        return
    rows = _lock_skus(s, ctx.customer_id, needed, exclusive)
    if not rows and s.scalar(select(TenantSku.id).where(TenantSku.customer_id == ctx.customer_id).limit(1)) is None:
        refresh_skus(s, ctx.service_provider_id, ctx.customer_id, ctx.require_connected())
        rows = _lock_skus(s, ctx.customer_id, needed, exclusive)
    short, close = _count(s, ctx.customer_id, needed, rows, own_held)
    if short and not exclusive:
        raise NeedsExclusiveLock  # a refusal is decided under the exclusive lock, on fresh counts
    if short and _counted_before(s, ctx.customer_id, needed, utcnow() - RECOUNT_AFTER):
        # Microsoft may have more seats than we last read (the reseller bought some): read them
        # before refusing. Only on the way to a refusal, so accepts do not wait for Graph.
        try:
            refresh_skus(s, ctx.service_provider_id, ctx.customer_id, ctx.require_connected())
        except ServiceError as exc:  # Microsoft unreachable: refuse on the counts we have, as before
            log.warning("could not re-read the licences of customer %s before refusing: %s", ctx.customer_id,
                        exc.code)
        else:
            rows = _lock_skus(s, ctx.customer_id, needed, exclusive)
            short, close = _count(s, ctx.customer_id, needed, rows, own_held)
    if short:
        names = ", ".join(f"{x['sku_part_number']} ({x['free']} free, {x['needed']} needed)" for x in short)
        raise StateConflict("no_free_licences", f"not enough free seats: {names}", skus=short)
    if close and not exclusive:
        raise NeedsExclusiveLock


_margin: int | None = None


def _safety_margin(s: Session) -> int:
    """No more transactions than this can be open at once, so no more unseen reservations either."""
    global _margin
    if _margin is None:
        if s.get_bind().dialect.name != "postgresql":
            return 0  # SQLite runs one write transaction at a time: nothing is ever unseen
        _margin = int(s.connection().exec_driver_sql("SHOW max_connections").scalar_one())
    return _margin


def _count(s: Session, customer_id: str, needed: Counter[str], rows: dict[str, tuple[int, int]],
           own_held: bool) -> tuple[list[dict[str, Any]], bool]:
    """(SKUs short of seats, whether any comes within the safety margin)."""
    conn = s.connection()
    # A statement of its own, after the lock: one evaluated with the lock would use a snapshot older
    # than the commit it waited for.
    held = {sku: int(n) for sku, n in conn.execute(_held_stmt(conn.dialect.name), {
        "customer_id": customer_id, "skus": list(needed)})}
    short, close = [], False
    for sku, n in sorted(needed.items()):
        total, consumed = rows.get(sku, (0, 0))
        free = total - consumed - (held.get(sku, 0) - (n if own_held else 0))
        if free < n:
            short.append({"sku_part_number": sku, "free": max(free, 0), "needed": n})
        close = close or free - n < _safety_margin(s)
    return short, close


def _counted_before(s: Session, customer_id: str, skus: Collection[str], when: datetime) -> bool:
    """Whether any of these SKU counts was read from Microsoft before `when` (or never)."""
    times = s.scalars(select(TenantSku.refreshed_at).where(TenantSku.customer_id == customer_id,
                                                           TenantSku.sku_part_number.in_(list(skus)))).all()
    return len(times) < len(skus) or any(t is None or t < when for t in times)


def skus_held_by(s: Session, user_id: str, licences: Collection[str]) -> set[str]:
    """SKUs the user already holds: seen on the Entra user, or consumed by one of our earlier requests."""
    consumed = s.scalars(select(SeatReservation.sku_part_number).where(
        SeatReservation.user_id == user_id, SeatReservation.state == ledger.CONSUMED))
    return set(licences) | set(consumed)


def _lock_skus(s: Session, customer_id: str, skus: Collection[str], exclusive: bool) -> dict[str, tuple[int, int]]:
    """{sku: (total, consumed)}, the rows locked (part-number order, so no deadlocks) until commit."""
    conn = s.connection()
    found = conn.execute(_lock_skus_stmt(exclusive, conn.dialect.name),
                        {"customer_id": customer_id, "skus": list(skus)})
    return {sku: (total, consumed) for sku, total, consumed in found}


@cache
def _enabled_stmt() -> Executable:
    return (select(PlanEnablement.user_plan_id, PlanEnablement.hard_limit, UserPlanLicence.sku_part_number)
            .outerjoin(UserPlanLicence, UserPlanLicence.user_plan_id == PlanEnablement.user_plan_id)
            .where(PlanEnablement.customer_id == bindparam("customer_id"),
                   PlanEnablement.user_plan_id.in_(bindparam("plans", expanding=True)),
                   PlanEnablement.enabled.is_(True))
            .order_by(PlanEnablement.user_plan_id, UserPlanLicence.position))


def _one_of(column: Any, name: str, dialect: str) -> Any:
    """`column IN (…)`; on PostgreSQL `= ANY(array)`, one bind whatever the count."""
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


@cache
def _lock_skus_stmt(exclusive: bool, dialect: str) -> Executable:
    return (select(TenantSku.sku_part_number, TenantSku.total, TenantSku.consumed)
            .where(TenantSku.customer_id == bindparam("customer_id"),
                   _one_of(TenantSku.sku_part_number, "skus", dialect))
            .order_by(TenantSku.sku_part_number).with_for_update(read=not exclusive))


@cache
def _held_stmt(dialect: str) -> Executable:
    return (select(SeatHold.sku_part_number, func.sum(SeatHold.held))
            .where(SeatHold.customer_id == bindparam("customer_id"),
                   _one_of(SeatHold.sku_part_number, "skus", dialect))
            .group_by(SeatHold.sku_part_number))
