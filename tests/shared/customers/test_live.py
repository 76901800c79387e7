"""Live reads behind fakes: SKU refresh (upsert, removal), the MCA read/record, error mapping."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.agreements import service as agreements
from shared.auth.principal import Principal
from shared.customers import licences, live
from shared.db.models import Agreement, ProvisioningRequest, TenantSku
from shared.db.uow import UnitOfWork
from shared.errors import MicrosoftUnavailable, StateConflict
from shared.microsoft import errors as ms
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from tests.builders import Builder, Sku

OP = Principal("00000000-0000-4000-8000-000000000001", "operator")


class FakePartnerCenter:
    def __init__(self, skus: list[dict[str, Any]] | None = None) -> None:
        self.recorded: list[tuple[str, dict[str, Any], str | None]] = []
        self.agreements: list[dict[str, Any]] = []
        self.skus = skus or []

    def subscribed_skus(self, tenant_id: str) -> list[dict[str, Any]]:
        return self.skus

    def get_agreements(self, tenant_id: str) -> list[dict[str, Any]]:
        return self.agreements

    def record_agreement(self, tenant_id: str, contact: dict[str, Any], date: str | None) -> dict[str, Any]:
        self.recorded.append((tenant_id, contact, date))
        return {"dateAgreed": date or "2026-01-02T00:00:00Z"}


def _sku(part: str, active: int, consumed: int, warning: int = 0) -> dict[str, Any]:
    """A Partner Center SubscribedSku."""
    return {"activeUnits": active, "warningUnits": warning, "totalUnits": active + warning,
            "consumedUnits": consumed, "availableUnits": active + warning - consumed,
            "productSku": {"id": f"id-{part}", "name": part.title(), "skuPartNumber": part, "targetType": "User"},
            "servicePlans": [{"serviceName": "EXCHANGE_S_STANDARD", "id": "9aaf7827-d63c-4b61-89c3-182f06f82e5c"}]}


def test_licences_refresh_upserts_and_removes(db: Session, maker: sessionmaker[Session],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    b = Builder(db)
    customer = b.customer(b.provider(), skus=[Sku("OLD", total=1), Sku("E3", total=1)])
    pc = FakePartnerCenter([_sku("E3", 10, 4, warning=2), _sku("EMS", 5, 0)])
    monkeypatch.setattr(live, "partner_center", lambda provider: pc)
    monkeypatch.setattr(live, "graph", lambda provider, tenant: pytest.fail("the licence view reads Partner Center"))
    seats = licences.licences(UnitOfWork(maker), OP, customer.id)
    # Units in warning cannot be handed out: as Graph's prepaidUnits.enabled, only the active ones count.
    assert [(s.sku_part_number, s.sku_id, s.total, s.consumed, s.free) for s in seats] == [
        ("E3", "id-E3", 10, 4, 6), ("EMS", "id-EMS", 5, 0, 5)]
    rows = db.scalars(select(TenantSku).where(TenantSku.customer_id == customer.id)).all()
    assert {r.sku_part_number for r in rows} == {"E3", "EMS"} and all(r.refreshed_at for r in rows)
    assert all(r.service_plans == ["EXCHANGE_S_STANDARD"] for r in rows)


def test_errors_are_mapped_for_the_caller() -> None:
    cases = [(ms.Throttled("x", retry_after=7), MicrosoftUnavailable, 503),
             (ms.Transient("x"), MicrosoftUnavailable, 503), (ms.AuthFailed("x"), MicrosoftUnavailable, 502),
             (ms.BadRequest("x"), MicrosoftUnavailable, 502), (ms.Forbidden("x"), StateConflict, 409),
             (ms.NotFound("x"), StateConflict, 409)]
    for error, kind, status in cases:
        with pytest.raises(kind) as caught, live.microsoft_call("testing"):
            raise error
        assert caught.value.status == status
    with pytest.raises(MicrosoftUnavailable) as throttled, live.microsoft_call("t"):
        raise ms.Throttled("x", retry_after=7)
    assert throttled.value.retry_after == 7


def test_agreement_read_and_record(db: Session, maker: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch,
                                   published: list[RequestRef]) -> None:
    b = Builder(db)
    customer = b.customer(b.provider(), mca_signed=False)
    blocked = b.request(kinds.CUSTOMER_MICROSOFT_ONLINE, customer=customer)
    blocked.state, blocked.blocked_reason = kinds.BLOCKED, "mca_not_signed"
    db.flush()
    pc = FakePartnerCenter()
    monkeypatch.setattr(live, "partner_center", lambda provider: pc)
    assert agreements.read_agreement(UnitOfWork(maker), OP, customer.id).signed is False
    contact = agreements.Contact("Ada", "Lovelace", "ada@example.com", "+44 1")
    view = agreements.record_agreement(UnitOfWork(maker), OP, customer.id, contact, "2026-01-01T00:00:00Z",
                                       idem=None, present=lambda v: v).body
    assert view.signed and view.date_agreed == "2026-01-01T00:00:00Z"
    assert pc.recorded[0][1] == {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
                                 "phoneNumber": "+44 1"}
    db.expire_all()
    row = db.scalar(select(Agreement).where(Agreement.customer_id == customer.id))
    assert row is not None and row.signed and row.primary_contact == {
        "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com", "phone": "+44 1"}
    assert db.get(ProvisioningRequest, blocked.id).state == kinds.QUEUED  # type: ignore[union-attr]
    assert [p.id for p in published] == [blocked.id]
    pc.agreements = [{"dateAgreed": "2026-01-01T00:00:00Z",
                      "primaryContact": {"firstName": "Ada", "lastName": "L", "email": "a@b.c"}}]
    assert agreements.read_agreement(UnitOfWork(maker), OP, customer.id).primary_contact["last_name"] == "L"  # type: ignore[index]
