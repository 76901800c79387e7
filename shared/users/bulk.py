"""Many users and their plan in one call: validated as a whole, one lock, a few statements, one request each."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.auth.principal import Principal
from shared.customers import context
from shared.db.models import User
from shared.db.uow import UnitOfWork
from shared.errors import InvalidInput, StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.requests.dispatch import publish_after_commit
from shared.users import checks, rows
from shared.users.service import UserInput


@dataclass(frozen=True)
class BulkUser:
    data: UserInput
    user_plan_id: str


def bulk_provision(uow: UnitOfWork, who: Principal, customer_id: str, users: Sequence[BulkUser], *,
                   idem: Idempotency | None, present: Callable[[list[rows.NewUser]], Any]) -> Answer:
    """All or nothing: the same checks as one user, counted across the batch (hard limits, seats)."""

    def work(uow: UnitOfWork) -> list[rows.NewUser]:
        s = uow.session
        ctx = context.load(s, who, customer_id)
        unique_upns(users)
        ctx.require_connected()
        ctx.require_mca(s)
        existing_upns(s, customer_id, users)
        wanted = Counter(u.user_plan_id for u in users)
        rules = checks.enabled_plans(s, customer_id, list(wanted))
        items = rows.insert_provisioned_users(
            s, customer_id=customer_id, service_provider_id=ctx.service_provider_id,
            users=[u.data for u in users], plans=[u.user_plan_id for u in users], created_by=who.key_id)
        audit.record_many(s, who.actor, "user.created", "user",
                          ((i.user.id, {"customer_id": customer_id, "upn": i.user.upn, "request_id": i.request.id,
                                        "user_plan_id": i.service.user_plan_id, "bulk": True}) for i in items))
        rows.reserve_seats(s, customer_id, items, rules.skus)
        # Last, so the per-customer locks are held only for the counts and the commit.
        checks.within_limits(s, customer_id, wanted, rules.limits, [i.user.id for i in items])
        needed = Counter(sku for u in users for sku in rules.skus[u.user_plan_id])
        checks.check_seats(s, ctx, needed, own_held=True)
        publish_after_commit(uow, rows.refs(items))
        return items

    return answer_once(uow, idem, 202, work, present, secret=True)


def unique_upns(users: Sequence[BulkUser], field: str = "users") -> None:
    """422 naming each index whose UPN already appeared earlier in the same batch."""
    seen: dict[str, int] = {}
    errors = []
    for i, u in enumerate(users):
        if u.data.upn in seen:
            errors.append({"loc": ["body", field, i, "upn"], "msg": f"duplicate of users[{seen[u.data.upn]}]",
                           "type": "duplicate_upn"})
        seen.setdefault(u.data.upn, i)
    if errors:
        raise InvalidInput(f"{len(errors)} duplicate UPN(s) in the batch", errors)


def existing_upns(s: Session, customer_id: str, users: Sequence[BulkUser], field: str = "users") -> None:
    """409 upn_conflict naming each index whose UPN the customer already has."""
    upns = [u.data.upn for u in users]
    taken = set(s.scalars(select(User.upn).where(User.customer_id == customer_id, User.upn.in_(upns))))
    if taken:
        errors = [{"loc": ["body", field, i, "upn"], "msg": f"the customer already has {u}", "type": "upn_conflict"}
                  for i, u in enumerate(upns) if u in taken]
        raise StateConflict("upn_conflict", f"{len(taken)} UPN(s) already exist for the customer", errors=errors)
