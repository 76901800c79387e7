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
from shared.idempotency import MAX_AGE, PASSWORD_WITHHELD, Idempotency, answer_once, fingerprint
from shared.security import api_key_prefix, encrypt


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


def test_replay_conflict_and_withheld_password(maker: sessionmaker[Session], key_id: str, db: Session) -> None:
    calls: list[int] = []

    def work(uow: UnitOfWork) -> dict[str, Any]:
        calls.append(1)
        return {"temporary_password": "Sup3r-Secret!", "n": len(calls), "items": [{"temporary_password": "Tw0-x"}]}

    idem = Idempotency(key_id, "k1", "fp")
    first = answer_once(UnitOfWork(maker), idem, 202, work, dict, secret=True)
    again = answer_once(UnitOfWork(maker), idem, 202, work, dict, secret=True)
    assert first.body["temporary_password"] == "Sup3r-Secret!" and again.replayed and not first.replayed
    assert len(calls) == 1 and again.body["n"] == 1
    # The replay says the password was shown once instead of carrying it, at every depth.
    assert again.body["temporary_password"] is None and again.body["temporary_password_note"] == PASSWORD_WITHHELD
    assert again.body["items"] == [{"temporary_password": None, "temporary_password_note": PASSWORD_WITHHELD}]
    stored = db.get(IdempotentAnswer, (key_id, "k1"))
    assert stored is not None and "Sup3r-Secret!" not in str(stored.body) and "Tw0-x" not in str(stored.body)
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


def test_an_answer_sealed_by_an_earlier_release_replays_without_its_password(
        maker: sessionmaker[Session], key_id: str, db: Session) -> None:
    body = {"sealed": encrypt('{"temporary_password": "Old-S3cret", "n": 1}').decode()}
    db.add(IdempotentAnswer(api_key_id=key_id, key="k-old", fingerprint="fp", status=202, body=body))
    db.flush()
    again = answer_once(UnitOfWork(maker), Idempotency(key_id, "k-old", "fp"), 202, lambda uow: 0, dict)
    assert again.replayed and again.body == {"temporary_password": None, "n": 1,
                                             "temporary_password_note": PASSWORD_WITHHELD}


def test_cleanup_purges_answers_past_their_24_hours(maker: sessionmaker[Session], key_id: str, db: Session) -> None:
    from shared.pipeline.cleanup import run

    for name, age in (("old", MAX_AGE + timedelta(minutes=1)), ("young", MAX_AGE - timedelta(minutes=5))):
        db.add(IdempotentAnswer(api_key_id=key_id, key=name, fingerprint="fp", status=202, body={"plain": 1},
                                created_at=utcnow() - age))
    db.flush()
    run(db, now=utcnow())
    db.expire_all()
    assert db.get(IdempotentAnswer, (key_id, "old")) is None
    assert db.get(IdempotentAnswer, (key_id, "young")) is not None


def test_failed_work_stores_nothing(maker: sessionmaker[Session], key_id: str, db: Session) -> None:
    def boom(uow: UnitOfWork) -> None:
        raise StateConflict("mca_not_signed", "no")

    with pytest.raises(StateConflict):
        answer_once(UnitOfWork(maker), Idempotency(key_id, "k3", "fp"), 202, boom, dict)
    assert db.get(IdempotentAnswer, (key_id, "k3")) is None
