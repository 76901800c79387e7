"""Accepting provisioning at the service layer: the checks in order, rows written, seats held, publishing."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.auth.principal import Principal
from shared.db.models import AuditEvent, ProvisioningRequest, SeatReservation, User, UserService
from shared.db.uow import UnitOfWork
from shared.errors import InvalidInput, ObjectNotFound, StateConflict
from shared.requests.dispatch import RequestRef
from shared.security import decrypt
from shared.users import bulk, provisioning
from shared.users.service import UserInput
from tests.builders import Builder, Licence, Sku

OP = Principal("00000000-0000-4000-8000-000000000001", "operator")
E3, EMS = "SPE_E3", "EMS"


def _raw(x: Any) -> Any:
    return x


@pytest.fixture
def setup(db: Session) -> dict[str, Any]:
    b = Builder(db)
    sp = b.provider()
    plan = b.user_plan([Licence(E3), Licence(EMS)], sp)
    customer = b.customer(sp, skus=[Sku(E3, total=3), Sku(EMS, total=2, consumed=1)], plans=[(plan, None)])
    user = User(customer_id=customer.id, upn="ada@contoso.com", display_name="Ada", first_name="Ada",
                last_name="L", usage_location="GB", aliases=[])
    db.add(user)
    db.flush()
    return {"b": b, "sp": sp, "plan": plan, "customer": customer, "user": user}


def _provision(maker: sessionmaker[Session], user_id: str, plan_id: str, who: Principal = OP) -> Any:
    return provisioning.provision_user(UnitOfWork(maker), who, user_id, plan_id, idem=None, present=_raw).body


def test_provision_writes_request_service_seats_and_audit(setup: dict[str, Any], maker: sessionmaker[Session],
                                                           db: Session, published: list[RequestRef]) -> None:
    result = _provision(maker, setup["user"].id, setup["plan"].id)
    req = db.get(ProvisioningRequest, result.request.id)
    assert req is not None and req.kind == "user.provision" and req.params == {"user_plan_id": setup["plan"].id}
    assert req.steps[0].name == "reserve_seat" and req.created_by == OP.key_id
    service = db.scalar(select(UserService).where(UserService.user_id == setup["user"].id))
    assert service is not None and service.state == "provisioning" and service.request_id == req.id
    assert decrypt(service.temp_password_enc or b"") == result.temporary_password
    seats = sorted(db.scalars(select(SeatReservation.sku_part_number).where(SeatReservation.request_id == req.id)))
    assert seats == [EMS, E3]
    assert db.scalar(select(AuditEvent.action).where(AuditEvent.object_id == setup["user"].id)) == \
        "user.provision.requested"
    assert published == [RequestRef(req.id, "user.provision", "reserve_seat", 1)]


def test_seat_check_counts_held_and_consumed(setup: dict[str, Any], maker: sessionmaker[Session], db: Session,
                                            published: list[RequestRef]) -> None:
    other = User(customer_id=setup["customer"].id, upn="bob@contoso.com", display_name="Bob", aliases=[])
    db.add(other)
    db.flush()
    _provision(maker, setup["user"].id, setup["plan"].id)  # EMS: 2 total, 1 consumed, now 1 held
    with pytest.raises(StateConflict) as err:
        _provision(maker, other.id, setup["plan"].id)
    assert err.value.code == "no_free_licences"
    assert err.value.extra["skus"] == [{"sku_part_number": EMS, "free": 0, "needed": 1}]
    assert db.scalar(select(UserService).where(UserService.user_id == other.id)) is None  # nothing written


def test_a_held_licence_is_not_reserved_again(setup: dict[str, Any], maker: sessionmaker[Session], db: Session,
                                              published: list[RequestRef]) -> None:
    setup["user"].licences = [EMS]
    db.flush()
    result = _provision(maker, setup["user"].id, setup["plan"].id)
    seats = db.scalars(select(SeatReservation.sku_part_number).where(
        SeatReservation.request_id == result.request.id)).all()
    assert seats == [E3]


def test_scope_and_unknown_users(setup: dict[str, Any], maker: sessionmaker[Session]) -> None:
    foreign = Principal("k", "service-provider", "00000000-0000-4000-8000-00000000dead")
    with pytest.raises(ObjectNotFound):
        _provision(maker, setup["user"].id, setup["plan"].id, foreign)
    with pytest.raises(ObjectNotFound):
        _provision(maker, "00000000-0000-4000-8000-000000000000", setup["plan"].id)


def test_bulk_counts_the_batch_and_writes_all(setup: dict[str, Any], maker: sessionmaker[Session], db: Session,
                                              published: list[RequestRef]) -> None:
    def users(n: int) -> list[bulk.BulkUser]:
        return [bulk.BulkUser(UserInput(f"u{i}@contoso.com", "U", str(i), "GB"), setup["plan"].id) for i in range(n)]

    with pytest.raises(StateConflict) as err:  # EMS has 1 free seat
        bulk.bulk_provision(UnitOfWork(maker), OP, setup["customer"].id, users(2), idem=None, present=_raw)
    assert err.value.code == "no_free_licences"
    items = bulk.bulk_provision(UnitOfWork(maker), OP, setup["customer"].id, users(1), idem=None, present=_raw).body
    assert len(items) == 1 and len(published) == 1
    with pytest.raises(InvalidInput):
        dup = users(1) * 2
        bulk.bulk_provision(UnitOfWork(maker), OP, setup["customer"].id, dup, idem=None, present=_raw)
    with pytest.raises(StateConflict) as conflict:
        bulk.bulk_provision(UnitOfWork(maker), OP, setup["customer"].id, users(1), idem=None, present=_raw)
    assert conflict.value.code == "upn_conflict"
