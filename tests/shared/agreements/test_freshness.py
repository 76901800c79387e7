"""A stored "not signed" older than a minute is read again from Partner Center before mca_not_signed."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from shared.agreements import freshness
from shared.auth.principal import Principal
from shared.customers import context, live
from shared.db.models import Agreement
from shared.db.types import utcnow
from shared.errors import StateConflict

OP = Principal("00000000-0000-4000-8000-000000000001", "operator")
SIGNED = {"type": "MicrosoftCustomerAgreement", "dateAgreed": "2026-01-05T00:00:00Z",
          "primaryContact": {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.com"}}


class CountingPartnerCenter:
    def __init__(self) -> None:
        self.agreements: list[dict[str, Any]] = []
        self.reads = 0

    def get_agreements(self, tenant_id: str) -> list[dict[str, Any]]:
        self.reads += 1
        return self.agreements


@pytest.fixture
def pc(monkeypatch: pytest.MonkeyPatch) -> CountingPartnerCenter:
    fake = CountingPartnerCenter()
    monkeypatch.setattr(live, "partner_center", lambda provider: fake)
    return fake


@pytest.fixture
def unsigned(world, db):
    """The world's customer, its MCA stored as not signed, last read `age` ago."""
    def make(age: timedelta) -> Any:
        customer = world.b.customer(world.provider, mca_signed=False)
        db.execute(update(Agreement).where(Agreement.customer_id == customer.id)
                   .values(checked_at=utcnow() - age))
        freshness.forget(customer.id)
        return customer
    return make


def test_an_old_not_signed_is_read_again_and_a_portal_signature_lets_the_caller_through(unsigned, pc, db):
    customer = unsigned(timedelta(minutes=2))
    pc.agreements = [SIGNED]
    ctx = context.load(db, OP, customer.id)
    assert ctx.mca_signed is False
    ctx.require_mca(db)  # no 409: Partner Center says it is signed now
    assert pc.reads == 1
    row = db.scalar(select(Agreement).where(Agreement.customer_id == customer.id))
    assert row.signed and row.date_agreed == "2026-01-05T00:00:00Z" and row.checked_at > utcnow() - timedelta(seconds=5)
    assert row.primary_contact["email"] == "ada@contoso.com"


def test_a_not_signed_read_within_the_minute_is_believed_without_asking(unsigned, pc, db):
    customer = unsigned(timedelta(seconds=10))
    pc.agreements = [SIGNED]
    with pytest.raises(StateConflict) as refused:
        context.load(db, OP, customer.id).require_mca(db)
    assert refused.value.code == "mca_not_signed" and pc.reads == 0


def test_still_not_signed_is_asked_at_most_once_a_minute(unsigned, pc, db):
    customer = unsigned(timedelta(minutes=5))
    ctx = context.load(db, OP, customer.id)
    for _ in range(3):
        with pytest.raises(StateConflict):
            ctx.require_mca(db)
    assert pc.reads == 1  # the refusal rolls its transaction back; the process remembers the read
    with pytest.raises(StateConflict):
        freshness.require_signed(db, customer.id, customer.service_provider_id, ctx.tenant_id or "",
                                 now=utcnow() + timedelta(seconds=61))
    assert pc.reads == 2


def test_a_stored_signature_needs_no_read(world, pc, db):
    context.load(db, OP, world.customer.id).require_mca(db)
    assert pc.reads == 0
