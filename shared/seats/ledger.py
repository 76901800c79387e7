"""Seat reservations: held when a request is accepted, consumed when the licence lands, else released."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import cast

from sqlalchemy import Executable, Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from shared.db.models import SeatHold, SeatReservation, TenantSku
from shared.db.types import utcnow
from shared.seats.free import free_seats

HELD, CONSUMED, RELEASED = "held", "consumed", "released"


@dataclass(frozen=True)
class SkuSeats:
    sku_part_number: str
    sku_id: str
    total: int
    consumed: int
    reserved: int

    @property
    def free(self) -> int:
        return free_seats(self.total, self.consumed, self.reserved)

    @property
    def unused(self) -> int:
        """Seats paid for and assigned to nobody (held ones included): bought seats are never reduced
        automatically, so a reseller sees here what it could cancel itself."""
        return max(0, self.total - self.consumed)


def held_counts(session: Session, customer_id: str) -> dict[str, int]:
    """Seats held per SKU: the triggers on seat_reservations keep these sums (migration 0003)."""
    rows = session.execute(
        select(SeatHold.sku_part_number, func.sum(SeatHold.held))
        .where(SeatHold.customer_id == customer_id)
        .group_by(SeatHold.sku_part_number)
    )
    return {sku: int(n) for sku, n in rows if n}


def seats(session: Session, customer_id: str) -> list[SkuSeats]:
    """The ledger for a customer from the last SKU counts read from Microsoft."""
    held = held_counts(session, customer_id)
    skus = session.scalars(select(TenantSku).where(TenantSku.customer_id == customer_id)
                           .order_by(TenantSku.sku_part_number))
    return [SkuSeats(s.sku_part_number, s.sku_id, s.total, s.consumed, held.get(s.sku_part_number, 0)) for s in skus]


def lock_skus(session: Session, customer_id: str, sku_part_numbers: Iterable[str]) -> dict[str, TenantSku]:
    """Lock the customer's SKU rows so two accepts cannot both take the last seat (FOR UPDATE on Postgres)."""
    rows = session.scalars(
        select(TenantSku)
        .where(TenantSku.customer_id == customer_id, TenantSku.sku_part_number.in_(list(sku_part_numbers)))
        .order_by(TenantSku.sku_part_number)
        .with_for_update()
    )
    return {r.sku_part_number: r for r in rows}


def reserve(session: Session, *, customer_id: str, user_id: str, request_id: str,
            sku_part_numbers: Iterable[str]) -> None:
    for sku in sku_part_numbers:
        session.add(SeatReservation(customer_id=customer_id, user_id=user_id, request_id=request_id,
                                    sku_part_number=sku, state=HELD))


def consume(session: Session, request_id: str) -> None:
    """The licence is assigned: the seat moves from held to consumed.

    The local consumed count is bumped too, so the ledger stays right until the next read
    of Microsoft's counts replaces it.

    Lock order: the reservations (and through their trigger the seat-hold rows) first, the SKU
    rows after, as every accept does; SKU counts the step refreshed but has not flushed yet wait
    (no_autoflush) so they do not lock the SKU rows first.
    """
    conn = session.connection()  # no autoflush: pending SKU counts must not lock the SKU rows first
    moved = conn.execute(_consume_stmt(), {"req": request_id, "now": utcnow()}).all()
    # A SKU row the step changed in this session (a live count read) is written at flush, after this:
    # the ORM's UPDATE keeps that object in step. Otherwise the plain statement does the same for less.
    pending = any(isinstance(obj, TenantSku) for obj in (*session.dirty, *session.new))
    for customer_id, sku in sorted(moved):
        if pending:
            with session.no_autoflush:
                session.execute(update(TenantSku).where(TenantSku.customer_id == customer_id,
                                                        TenantSku.sku_part_number == sku)
                                .values(consumed=TenantSku.consumed + 1))
        else:
            conn.execute(_count_consumed_stmt(), {"customer": customer_id, "sku": sku})


@cache
def _consume_stmt() -> Executable:
    r = cast(Table, SeatReservation.__table__).c
    return (update(cast(Table, SeatReservation.__table__))
            .where(r.request_id == bindparam("req"), r.state == HELD)
            .values(state=CONSUMED, updated_at=bindparam("now", type_=r.updated_at.type))
            .returning(r.customer_id, r.sku_part_number))


@cache
def _count_consumed_stmt() -> Executable:
    t = cast(Table, TenantSku.__table__)
    return (update(t).where(t.c.customer_id == bindparam("customer"), t.c.sku_part_number == bindparam("sku"))
            .values(consumed=t.c.consumed + 1))


def licences_removed(session: Session, customer_id: str, sku_part_numbers: Iterable[str]) -> None:
    for sku in sku_part_numbers:
        session.execute(update(TenantSku).where(TenantSku.customer_id == customer_id,
                                                TenantSku.sku_part_number == sku, TenantSku.consumed > 0)
                        .values(consumed=TenantSku.consumed - 1))


def assigned_by_engine(session: Session, user_id: str) -> list[str]:
    """SKU part numbers the engine assigned to the user and has not taken back: its consumed seats."""
    return sorted(set(session.scalars(select(SeatReservation.sku_part_number).where(
        SeatReservation.user_id == user_id, SeatReservation.state == CONSUMED))))


def release_skus(session: Session, user_id: str, sku_part_numbers: Iterable[str]) -> None:
    """The engine took these licences back (a plan change): their seats are the user's no more."""
    parts = list(sku_part_numbers)
    if parts:
        session.execute(update(SeatReservation).where(
            SeatReservation.user_id == user_id, SeatReservation.sku_part_number.in_(parts),
            SeatReservation.state.in_([HELD, CONSUMED])).values(state=RELEASED))


def release(session: Session, request_id: str) -> None:
    """The request failed, was cancelled, or the user was deprovisioned."""
    session.execute(update(SeatReservation).where(SeatReservation.request_id == request_id,
                                                  SeatReservation.state == HELD).values(state=RELEASED))


def release_user(session: Session, user_id: str) -> None:
    session.execute(update(SeatReservation).where(SeatReservation.user_id == user_id,
                                                  SeatReservation.state.in_([HELD, CONSUMED]))
                    .values(state=RELEASED))
