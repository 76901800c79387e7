"""Keyset paging: every row once, in order, across pages; cursors are validated."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import Customer, ProvisioningRequest
from shared.errors import InvalidInput
from shared.paging import fetch_page
from tests.builders import Builder


def test_pages_cover_every_row_once(db: Session) -> None:
    b = Builder(db)
    sp = b.provider()
    made = {b.customer(sp, connected=False).id for _ in range(7)}
    stmt = select(Customer).where(Customer.service_provider_id == sp.id)
    seen, cursor = [], None
    while True:
        page = fetch_page(db, stmt, (Customer.name, Customer.id), cursor, 3)
        seen += [c.id for c in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert set(seen) == made and len(seen) == 7


def test_descending_time_cursor(db: Session) -> None:
    b = Builder(db)
    sp = b.provider()
    c = b.customer(sp)
    reqs = [b.request("customer.sync", customer=c) for _ in range(5)]
    stmt = select(ProvisioningRequest).where(ProvisioningRequest.customer_id == c.id)
    first = fetch_page(db, stmt, (ProvisioningRequest.created_at, ProvisioningRequest.id), None, 2, descending=True)
    rest = fetch_page(db, stmt, (ProvisioningRequest.created_at, ProvisioningRequest.id), first.next_cursor, 10,
                      descending=True)
    assert {r.id for r in first.items + rest.items} == {r.id for r in reqs} and rest.next_cursor is None


@pytest.mark.parametrize("cursor", ["!!", "bm90IGpzb24", "WzFd", "WyJhIiwgImIiXQ", "WyIyMDI0LTAxLTAxIiwgImEiXQ"])
def test_bad_cursors_are_invalid_input(db: Session, cursor: str) -> None:
    with pytest.raises(InvalidInput):
        fetch_page(db, select(ProvisioningRequest), (ProvisioningRequest.created_at, ProvisioningRequest.id),
                   cursor, 2)
