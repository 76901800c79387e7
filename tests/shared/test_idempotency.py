"""Idempotency: canonical fingerprints, stored answers replayed, conflicts, sealed secrets, expiry."""
from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.auth.keys import create_key
from shared.db.models import ApiKey, IdempotentAnswer
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.idempotency import MAX_AGE, Idempotency, answer_once, fingerprint
from shared.security import api_key_prefix


@pytest.fixture
def maker(db: Session) -> sessionmaker[Session]:
    return sessionmaker(bind=db.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def key_id(db: Session) -> str:
    key = create_key(db, "operator")
    db.flush()
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == api_key_prefix(key)))
    assert row is not None
    return row.id


def test_fingerprint_ignores_key_order_and_spacing() -> None:
    a = fingerprint("post", "/v1/x", b'{"a": 1, "b": [1, 2]}')
    assert a == fingerprint("POST", "/v1/x", b'{"b":[1,2],"a":1}')
    assert a != fingerprint("POST", "/v1/y", b'{"a": 1, "b": [1, 2]}')
    assert a != fingerprint("POST", "/v1/x", b'{"a": 2, "b": [1, 2]}')
    assert fingerprint("POST", "/v1/x", b"not json") != fingerprint("POST", "/v1/x", b"other")


def test_replay_conflict_and_seal(maker: sessionmaker[Session], key_id: str, db: Session) -> None:
    calls: list[int] = []

    def work(uow: UnitOfWork) -> dict[str, Any]:
        calls.append(1)
        return {"password": "Sup3r-Secret!", "n": len(calls)}

    idem = Idempotency(key_id, "k1", "fp")
    first = answer_once(UnitOfWork(maker), idem, 202, work, dict, secret=True)
    again = answer_once(UnitOfWork(maker), idem, 202, work, dict, secret=True)
    assert first.body == again.body and again.replayed and not first.replayed and len(calls) == 1
    stored = db.get(IdempotentAnswer, (key_id, "k1"))
    assert stored is not None and "Sup3r-Secret!" not in str(stored.body)
    with pytest.raises(StateConflict) as err:
        answer_once(UnitOfWork(maker), Idempotency(key_id, "k1", "other"), 202, work, dict)
    assert err.value.code == "idempotency_conflict"
    none = answer_once(UnitOfWork(maker), Idempotency(key_id, None, "fp"), 201, work, dict)
    assert none.body["n"] == 2 and not none.replayed


def test_old_answers_are_forgotten(maker: sessionmaker[Session], key_id: str, db: Session) -> None:
    idem = Idempotency(key_id, "k2", "fp")
    answer_once(UnitOfWork(maker), idem, 201, lambda uow: 1, lambda n: {"n": n})
    row = db.get(IdempotentAnswer, (key_id, "k2"))
    assert row is not None
    row.created_at = utcnow() - MAX_AGE - timedelta(minutes=1)
    db.flush()
    fresh = answer_once(UnitOfWork(maker), idem, 201, lambda uow: 2, lambda n: {"n": n})
    assert fresh.body == {"n": 2} and not fresh.replayed


def test_failed_work_stores_nothing(maker: sessionmaker[Session], key_id: str, db: Session) -> None:
    def boom(uow: UnitOfWork) -> None:
        raise StateConflict("mca_not_signed", "no")

    with pytest.raises(StateConflict):
        answer_once(UnitOfWork(maker), Idempotency(key_id, "k3", "fp"), 202, boom, dict)
    assert db.get(IdempotentAnswer, (key_id, "k3")) is None
