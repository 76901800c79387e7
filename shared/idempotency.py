"""Idempotency-Key: the first answer to a creating call is stored with its work and replayed for retries."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import orjson
from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db.models import IdempotentAnswer
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.errors import StateConflict
from shared.security import decrypt

MAX_AGE = timedelta(hours=24)
MAX_KEY_LENGTH = 200
# What a replay says in place of a temporary password: the first answer was the only one to carry it.
PASSWORD_WITHHELD = "shown once, in the first answer to this Idempotency-Key; a replay does not carry it"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Idempotency:
    """One call's key (None when the client sent none) and the fingerprint of what it asked."""

    api_key_id: str
    key: str | None
    fingerprint: str


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Method, path and body; JSON bodies are canonicalised so key order and spacing do not matter."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256(method.upper().encode() + b"\x00" + path.encode() + b"\x00" + canonical)
    return digest.hexdigest()


def answer_once(uow: UnitOfWork, idem: Idempotency | None, status: int, work: Callable[[UnitOfWork], T],
                present: Callable[[T], Any], *, secret: bool = False) -> Answer:
    """Run `work` and commit, storing `present(result)` under the key in the same transaction.

    A stored answer for the key is replayed instead; another request under the same key is a
    409 `idempotency_conflict`. Only successful answers are stored: an error leaves nothing behind
    (the whole call rolled back), so a retry with the same key runs again. `secret` answers (a
    temporary password) are stored without it: the replay says it was shown once. Answers older than
    MAX_AGE are forgotten (and purged by the hourly cleanup, shared.pipeline.cleanup).
    """
    keyed = idem is not None and idem.key is not None
    with uow:
        if keyed:
            assert idem is not None
            stored = _stored(uow.session, idem)
            if stored is not None:
                return stored
        result = work(uow)
        body = present(result)
        if keyed:
            assert idem is not None and idem.key is not None
            uow.session.add(IdempotentAnswer(api_key_id=idem.api_key_id, key=idem.key,
                                             fingerprint=idem.fingerprint, status=status,
                                             body={"plain": withhold_passwords(body) if secret else body}))
        uow.commit()
    return Answer(status, body)


def _stored(session: Session, idem: Idempotency) -> Answer | None:
    # Two calls racing with one key: the second waits here until the first commits, then replays it.
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                        {"k": f"{idem.api_key_id}:{idem.key}"})
    row = session.get(IdempotentAnswer, (idem.api_key_id, idem.key), populate_existing=True)
    if row is None:
        return None
    if row.created_at < utcnow() - MAX_AGE:
        session.delete(row)
        session.flush()
        return None
    if row.fingerprint != idem.fingerprint:
        raise StateConflict("idempotency_conflict",
                            "this Idempotency-Key was already used for a different request")
    return Answer(row.status, _unseal(row.body), replayed=True)


def withhold_passwords(body: Any) -> Any:
    """`body` with every `temporary_password` replaced by null and a note saying it was shown once."""
    if isinstance(body, list):
        return [withhold_passwords(item) for item in body]
    if not isinstance(body, dict):
        return body
    out = {k: withhold_passwords(v) for k, v in body.items()}
    if "temporary_password" in out:
        out["temporary_password"] = None
        out["temporary_password_note"] = PASSWORD_WITHHELD
    return out


def _unseal(stored: dict[str, Any]) -> Any:
    if "sealed" in stored:  # answers stored (encrypted) by earlier releases, still within their 24 h
        return withhold_passwords(orjson.loads(decrypt(stored["sealed"].encode())))
    return stored["plain"]
