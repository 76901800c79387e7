"""The seat-hold sums kept by triggers always equal the held reservations, on PostgreSQL and SQLite."""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, delete, func, select, update
from sqlalchemy.orm import Session

from shared.db.migrate import upgrade
from shared.db.models import Customer, SeatHold, SeatReservation, User
from shared.seats import ledger
from tests.builders import Builder, Licence, Sku

SKUS = ("SPE_E3", "EMS", "O365_BUSINESS_PREMIUM")


@pytest.fixture(params=["postgresql", "sqlite"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Session]:
    if request.param == "postgresql":
        yield request.getfixturevalue("db")
        return
    url = f"sqlite:///{tmp_path / 'holds.db'}"
    upgrade(url)
    engine = create_engine(url)
    with Session(engine, expire_on_commit=False) as s:
        yield s
    engine.dispose()


def held_by_reservations(s: Session, customer_id: str) -> Counter[str]:
    rows = s.execute(select(SeatReservation.sku_part_number, func.count()).where(
        SeatReservation.customer_id == customer_id, SeatReservation.state == ledger.HELD)
        .group_by(SeatReservation.sku_part_number))
    return Counter({sku: n for sku, n in rows})


def test_every_change_of_a_reservation_moves_the_sums(session: Session) -> None:
    s, rng = session, random.Random(7)
    b = Builder(s)
    provider = b.provider()
    plan = b.user_plan([Licence(sku) for sku in SKUS], provider)
    customer = b.customer(provider, skus=[Sku(sku, total=10_000) for sku in SKUS], plans=[(plan, None)])
    other = b.customer(provider, skus=[Sku(SKUS[0], total=10)], plans=[(plan, None)])
    users = [b.user(customer, f"u{i}@contoso.com", plan=plan) for i in range(40)]
    requests = [b.provision(u, plan) for u in users]  # three SKUs each, one statement per user
    b.provision(b.user(other, "x@contoso.com", plan=plan), plan)
    s.flush()

    def check() -> None:
        s.flush()
        assert Counter(ledger.held_counts(s, customer.id)) == held_by_reservations(s, customer.id)

    check()
    assert ledger.held_counts(s, customer.id) == {sku: 40 for sku in SKUS}
    for req in rng.sample(requests, 10):
        ledger.consume(s, req.id)  # held -> consumed
    check()
    for req in rng.sample(requests, 10):
        ledger.release(s, req.id)  # held (or nothing, if consumed) -> released
    check()
    # Many rows in one statement (a bulk insert, a mass update) and back again.
    s.execute(update(SeatReservation).where(SeatReservation.customer_id == customer.id,
                                            SeatReservation.state == ledger.RELEASED).values(state=ledger.HELD))
    check()
    s.execute(update(SeatReservation).where(SeatReservation.customer_id == customer.id)
              .values(extra={"note": "not a state change"}))
    check()
    # A user deleted: its reservations go by cascade (PostgreSQL) or by hand (SQLite without FK actions).
    gone = users[0]
    s.execute(delete(SeatReservation).where(SeatReservation.user_id == gone.id))
    s.execute(delete(User).where(User.id == gone.id))
    check()
    ledger.release_user(s, users[1].id)
    check()
    # The other customer's sums were never touched.
    assert ledger.held_counts(s, other.id) == {SKUS[0]: 1, SKUS[1]: 1, SKUS[2]: 1}
    assert all(h.held >= 0 for h in s.scalars(select(SeatHold)))


def test_a_customer_deleted_with_held_seats_leaves_no_sums(db: Session) -> None:
    b = Builder(db)
    provider = b.provider()
    plan = b.user_plan([Licence(SKUS[0])], provider)
    customer = b.customer(provider, skus=[Sku(SKUS[0], total=5)], plans=[(plan, None)])
    b.provision(b.user(customer, "a@contoso.com", plan=plan), plan)
    db.flush()
    db.execute(delete(Customer).where(Customer.id == customer.id))  # cascades to users and reservations
    db.flush()
    assert db.scalar(select(func.count()).select_from(SeatHold).where(SeatHold.customer_id == customer.id)) == 0
