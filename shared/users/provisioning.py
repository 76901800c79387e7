"""Accepting one user's provisioning or deprovisioning: every check first, then one request, seats held."""

# The API's hot path: one query reads and locks the user with everything the checks need, the writes
# are Core statements, and the per-customer locks come last so they are held only for a count and the commit.
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace
from typing import Any, cast

from sqlalchemy import Executable, Table, and_, bindparam, insert, select, update
from sqlalchemy.orm import Session

from shared import audit
from shared.auth.principal import Principal
from shared.auth.scope import can_see_customer
from shared.customers.context import CustomerContext
from shared.db.models import (
    Agreement,
    Customer,
    PlanEnablement,
    ProvisioningRequest,
    ServiceProvider,
    TenantConnection,
    User,
    UserPlanLicence,
    UserService,
)
from shared.db.types import new_id, utcnow
from shared.db.uow import UnitOfWork
from shared.errors import ObjectNotFound, StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.requests import kinds
from shared.requests.dispatch import publish_after_commit
from shared.security import encrypt, generate_password
from shared.users import checks, rows
from shared.users.service import MICROSOFT_ONLINE


@dataclass(frozen=True)
class Provisioning:
    request: SimpleNamespace
    temporary_password: str


@dataclass(frozen=True, slots=True)
class UserState:
    """The user as the checks need it, read (and its row locked) in one query."""

    id: str
    upn: str
    licences: list[str]
    service_id: str | None
    request_id: str | None
    request_state: str | None

    def no_active_request(self) -> None:
        # One chain per user at a time: two would race on the same Entra user.
        if self.request_state in kinds.ACTIVE_STATES:
            raise StateConflict("request_in_progress", f"user {self.upn} already has an active request "
                                                       f"({self.request_state})", request_id=self.request_id)


def provision_user(uow: UnitOfWork, who: Principal, user_id: str, user_plan_id: str, *,
                   idem: Idempotency | None, present: Callable[[Provisioning], Any]) -> Answer:
    """Checks, in this order: tenant connected, MCA recorded, (no other request active for the user),
    plan enabled, hard limit, free seats.

    Re-provisioning a provisioned user is allowed (it corrects the Entra UPN after a domain is
    verified); seats are only held for SKUs the user does not hold already. With seats to spare
    accepts for one customer run side by side; near the last seats they queue (see check_seats).
    """
    try:
        return _provision(uow, who, user_id, user_plan_id, idem, present, exclusive=False)
    except checks.NeedsExclusiveLock:  # rolled back; nothing was published (that is registered last)
        return _provision(uow, who, user_id, user_plan_id, idem, present, exclusive=True)


def _provision(uow: UnitOfWork, who: Principal, user_id: str, user_plan_id: str, idem: Idempotency | None,
               present: Callable[[Provisioning], Any], *, exclusive: bool) -> Answer:
    def work(uow: UnitOfWork) -> Provisioning:
        s = uow.session
        user, ctx, plan_rows = lock_user(s, who, user_id, user_plan_id=user_plan_id)
        ctx.require_connected()
        ctx.require_mca(s)
        user.no_active_request()
        rules = checks.plan_rules([user_plan_id], plan_rows)
        held = checks.skus_held_by(s, user.id, user.licences) if user.service_id else set(user.licences)
        needed = [sku for sku in rules.skus[user_plan_id] if sku not in held]
        password = generate_password()
        req = rows.insert_request(s, kind=kinds.USER_PROVISION, service_provider_id=ctx.service_provider_id,
                                  customer_id=ctx.customer_id, user_id=user.id,
                                  params={"user_plan_id": user_plan_id}, created_by=who.key_id)
        _set_service(s, user, state="provisioning", request_id=req.id, user_plan_id=user_plan_id,
                     temp_password_enc=encrypt(password))
        audit.record_many(s, who.actor, "user.provision.requested", "user", [
            (user.id, {"request_id": req.id, "user_plan_id": user_plan_id, "seats_held": needed})])
        rows.hold_seats(s, customer_id=ctx.customer_id, user_id=user.id, request_id=req.id, skus=needed)
        # Last, so the per-customer locks they take are held only for a count and the commit.
        checks.within_limits(s, ctx.customer_id, Counter({user_plan_id: 1}), rules.limits, [user.id])
        checks.check_seats(s, ctx, Counter(needed), own_held=True, exclusive=exclusive)
        publish_after_commit(uow, [rows.ref_of(req)])
        return Provisioning(req, password)

    return answer_once(uow, idem, 202, work, present, secret=True)


def deprovision_user(uow: UnitOfWork, who: Principal, user_id: str, *, delete_user: bool,
                     idem: Idempotency | None, present: Callable[[SimpleNamespace], Any]) -> Answer:
    """Start `user.deprovision` (remove licences, then disable or delete, release seats)."""

    def work(uow: UnitOfWork) -> SimpleNamespace:
        s = uow.session
        user, ctx, _ = lock_user(s, who, user_id)
        ctx.require_connected()
        if user.service_id is None and not s.scalar(select(User.entra_id).where(User.id == user.id)):
            raise StateConflict("conflict", f"user {user.upn} has no Microsoft Online service to remove")
        user.no_active_request()
        req = rows.insert_request(s, kind=kinds.USER_DEPROVISION, service_provider_id=ctx.service_provider_id,
                                  customer_id=ctx.customer_id, user_id=user.id,
                                  params={"delete_user": delete_user}, created_by=who.key_id)
        _set_service(s, user, state="deprovisioning", request_id=req.id, temp_password_enc=None)
        audit.record(s, who.actor, "user.deprovision.requested", "user", user.id,
                     {"request_id": req.id, "delete_user": delete_user})
        publish_after_commit(uow, [rows.ref_of(req)])
        return req

    return answer_once(uow, idem, 202, work, present)


def lock_user(s: Session, who: Principal, user_id: str, *, user_plan_id: str | None = None
              ) -> tuple[UserState, CustomerContext, list[tuple[str | None, int | None, str | None]]]:
    """The user, its service and its customer's context; 404 outside the caller's scope. With
    `user_plan_id`, also that plan's enablement for the customer and its SKUs, (plan, hard limit,
    SKU) rows for checks.plan_rules, read in the same query (one round trip fewer per accept).

    The user's row stays locked until commit, so two accepts for one user queue instead of racing.
    """
    params = {"user_id": user_id, "plan_id": user_plan_id} if user_plan_id is not None else {"user_id": user_id}
    rows = s.connection().execute(_lock_user_stmt(with_plan=user_plan_id is not None), params).all()
    if not rows or not can_see_customer(who, rows[0][1], rows[0][4]):
        raise ObjectNotFound("user", user_id)
    (uid, customer_id, upn, licences, provider_id, kind, tenant_id, tenant_state, signed, service_id, request_id,
     request_state) = rows[0][:12]
    plans = [(r[12], r[13], r[14]) for r in rows] if user_plan_id is not None else []
    return (UserState(uid, upn, list(licences or []), service_id, request_id, request_state),
            CustomerContext(customer_id, provider_id, kind, tenant_id, tenant_state, bool(signed)), plans)


@cache
def _lock_user_stmt(*, with_plan: bool) -> Executable:
    stmt = (select(User.id, User.customer_id, User.upn, User.licences, Customer.service_provider_id,
                   ServiceProvider.kind, TenantConnection.tenant_id, TenantConnection.state, Agreement.signed,
                   UserService.id, UserService.request_id, ProvisioningRequest.state)
            .join(Customer, Customer.id == User.customer_id)
            .join(ServiceProvider, ServiceProvider.id == Customer.service_provider_id)
            .outerjoin(TenantConnection, TenantConnection.customer_id == Customer.id)
            .outerjoin(Agreement, Agreement.customer_id == Customer.id)
            .outerjoin(UserService, and_(UserService.user_id == User.id, UserService.service == MICROSOFT_ONLINE))
            .outerjoin(ProvisioningRequest, ProvisioningRequest.id == UserService.request_id)
            .where(User.id == bindparam("user_id"))
            .with_for_update(of=User.__table__))
    if with_plan:
        stmt = (stmt.add_columns(PlanEnablement.user_plan_id, PlanEnablement.hard_limit,
                                 UserPlanLicence.sku_part_number)
                .outerjoin(PlanEnablement, and_(PlanEnablement.customer_id == User.customer_id,
                                                PlanEnablement.user_plan_id == bindparam("plan_id"),
                                                PlanEnablement.enabled.is_(True)))
                .outerjoin(UserPlanLicence, UserPlanLicence.user_plan_id == PlanEnablement.user_plan_id)
                .order_by(UserPlanLicence.position))
    return stmt


def _set_service(s: Session, user: UserState, **values: Any) -> None:
    now = utcnow()
    if user.service_id is None:
        s.connection().execute(_service_insert_stmt(), {"id": new_id(), "user_id": user.id,
                                                        "service": MICROSOFT_ONLINE, "created_at": now,
                                                        "updated_at": now, **values})
    else:
        s.connection().execute(_service_update_stmt(tuple(sorted(values))),
                               {"service_id": user.service_id, "updated_at": now, **values})


# Built once (per set of columns): they run for every accepted user.
@cache
def _service_insert_stmt() -> Executable:
    return insert(cast(Table, UserService.__table__))


@cache
def _service_update_stmt(columns: tuple[str, ...]) -> Executable:
    table = cast(Table, UserService.__table__)
    return (update(table).where(table.c.id == bindparam("service_id"))
            .values({c: bindparam(c) for c in ("updated_at", *columns)}))
