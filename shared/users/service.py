"""Creating, listing and reading users within the caller's scope."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from shared import audit
from shared.auth import scope
from shared.auth.principal import Principal
from shared.db.models import User, UserService
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import Answer, Idempotency, answer_once
from shared.paging import Page, fetch_page
from shared.reading import reading

MICROSOFT_ONLINE = "microsoft_online"


@dataclass(frozen=True)
class UserInput:
    """A validated user (see shared.users.validation): lower-case UPN, trimmed names, upper-case country."""

    upn: str
    first_name: str
    last_name: str
    usage_location: str
    display_name: str | None = None
    aliases: list[str] = field(default_factory=list)

    @property
    def shown_name(self) -> str:
        return self.display_name or f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class UserView:
    user: Any  # a User row, or a snapshot with the same attributes (bulk)
    service: Any | None  # its UserService (or snapshot), if any


def create_user(uow: UnitOfWork, who: Principal, customer_id: str, data: UserInput, *,
                idem: Idempotency | None, present: Callable[[UserView], Any]) -> Answer:
    def work(uow: UnitOfWork) -> UserView:
        s = uow.session
        scope.customer(s, who, customer_id)
        if s.scalar(select(User.id).where(User.customer_id == customer_id, User.upn == data.upn)) is not None:
            raise StateConflict("upn_conflict", f"the customer already has a user {data.upn}", upn=data.upn)
        row = User(customer_id=customer_id, upn=data.upn, first_name=data.first_name, last_name=data.last_name,
                   display_name=data.shown_name, usage_location=data.usage_location, aliases=list(data.aliases))
        s.add(row)
        try:
            s.flush()
        except IntegrityError:  # a concurrent create of the same UPN won the race
            raise StateConflict("upn_conflict", f"the customer already has a user {data.upn}",
                                upn=data.upn) from None
        audit.record(s, who.actor, "user.created", "user", row.id, {"customer_id": customer_id, "upn": data.upn})
        return UserView(row, None)

    return answer_once(uow, idem, 201, work, present)


def list_users(uow: UnitOfWork, who: Principal, customer_id: str, *, upn_prefix: str | None = None,
               state: str | None = None, service_state: str | None = None, user_plan_id: str | None = None,
               cursor: str | None = None, limit: int = 100) -> Page[UserView]:
    with reading(uow) as s:
        scope.customer(s, who, customer_id)
        stmt = select(User).where(User.customer_id == customer_id)
        if upn_prefix:
            stmt = stmt.where(User.upn.startswith(upn_prefix.lower(), autoescape=True))
        if state:
            stmt = stmt.where(User.state == state)
        if service_state or user_plan_id:
            stmt = stmt.join(UserService, (UserService.user_id == User.id)
                             & (UserService.service == MICROSOFT_ONLINE))
            if service_state:
                stmt = stmt.where(UserService.state == service_state)
            if user_plan_id:
                stmt = stmt.where(UserService.user_plan_id == user_plan_id)
        page = fetch_page(s, stmt, (User.upn, User.id), cursor, limit)
        ids = [u.id for u in page.items]
        services = {r.user_id: r for r in s.scalars(select(UserService).where(
            UserService.user_id.in_(ids), UserService.service == MICROSOFT_ONLINE))} if ids else {}
        return Page([UserView(u, services.get(u.id)) for u in page.items], page.next_cursor)


def get_user(uow: UnitOfWork, who: Principal, user_id: str) -> UserView:
    with reading(uow) as s:
        user, _ = scope.user(s, who, user_id)
        service = s.scalar(select(UserService).where(UserService.user_id == user.id,
                                                     UserService.service == MICROSOFT_ONLINE))
        return UserView(user, service)
