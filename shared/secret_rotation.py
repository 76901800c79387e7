"""Re-encrypting every stored secret with the newest of SECRET_KEYS (`provisioner keys rotate-secrets`)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from shared.db.models import IdempotentAnswer, OutboxMessage, RequestSecret, ServiceProvider, UserService
from shared.security import reencrypt

# Every column holding a Fernet token. A new encrypted column belongs here, or a rotation leaves it behind.
ENCRYPTED_COLUMNS: list[InstrumentedAttribute[Any]] = [
    ServiceProvider.pc_client_secret_enc,
    ServiceProvider.pc_refresh_token_enc,
    UserService.temp_password_enc,
    OutboxMessage.secret_enc,
    RequestSecret.secret_enc,
]
BATCH = 500


def rotate_secrets(session: Session) -> dict[str, int]:
    """Re-encrypt each stored secret under the newest key; how many per column. Caller commits.

    Safe to run twice and while the engine runs: every process decrypts with all of SECRET_KEYS, so old
    and new tokens both open until the old key is dropped from the list (after this has finished).
    """
    counts = {f"{c.class_.__tablename__}.{c.key}": _rotate_column(session, c) for c in ENCRYPTED_COLUMNS}
    counts["idempotent_answers.body"] = _rotate_sealed_answers(session)
    return counts


def _rotate_column(session: Session, column: InstrumentedAttribute[Any]) -> int:
    model = column.class_
    keys = [k.key for k in inspect(model).primary_key]
    pk = [getattr(model, k) for k in keys]
    rows = session.execute(select(*pk, column).where(column.is_not(None))).all()
    changes = [{**{k: row[i] for i, k in enumerate(keys)}, column.key: reencrypt(row[-1])} for row in rows]
    for start in range(0, len(changes), BATCH):  # ORM bulk UPDATE by primary key
        session.execute(update(model), changes[start:start + BATCH])
    return len(changes)


def _rotate_sealed_answers(session: Session) -> int:
    ia = IdempotentAnswer
    changes = []
    for api_key_id, key, body in session.execute(select(ia.api_key_id, ia.key, ia.body)):
        if isinstance(body, dict) and "sealed" in body:
            sealed = reencrypt(body["sealed"].encode()).decode()
            changes.append({"api_key_id": api_key_id, "key": key, "body": {"sealed": sealed}})
    for start in range(0, len(changes), BATCH):
        session.execute(update(ia), changes[start:start + BATCH])
    return len(changes)
