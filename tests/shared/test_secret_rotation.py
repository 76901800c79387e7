"""`keys rotate-secrets`: every stored secret re-encrypted under the newest key, readable once the old key goes."""
from __future__ import annotations

import os

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import IdempotentAnswer, ServiceProvider, UserService
from shared.secret_rotation import ENCRYPTED_COLUMNS, rotate_secrets
from shared.security import SecretUnreadable, decrypt, encrypt
from shared.settings import reset_settings
from tests.builders import Builder

OLD, NEW = "old-secret-key-" + "o" * 20, "new-secret-key-" + "n" * 20


def test_rotation_moves_every_secret_to_the_newest_key(db: Session, settings_env: pytest.MonkeyPatch) -> None:
    # Rows other tests committed to the session's database were sealed with the suite's key: still listed.
    suite_key = os.environ["SECRET_KEY"]
    settings_env.delenv("SECRET_KEYS", raising=False)
    settings_env.setenv("SECRET_KEY", OLD)
    reset_settings()
    b = Builder(db)
    sp = b.provider(client_secret="pc-secret")
    user = b.user(b.customer(sp), "ann@contoso.com", password="Temp&Pass-1234567")
    key = b.api_key("operator")
    db.add(IdempotentAnswer(api_key_id=key.id, key="k1", fingerprint="f", status=202,
                            body={"sealed": encrypt('{"a": 1}').decode()}))
    db.flush()

    settings_env.setenv("SECRET_KEYS", f"{NEW},{OLD},{suite_key}")
    reset_settings()
    counts = rotate_secrets(db)
    db.flush()
    assert counts["service_providers.pc_client_secret_enc"] >= 1 and counts["user_services.temp_password_enc"] >= 1
    assert counts["idempotent_answers.body"] >= 1
    assert len(counts) == len(ENCRYPTED_COLUMNS) + 1

    db.expire_all()
    row = db.get(ServiceProvider, sp.id)
    assert row is not None and decrypt(row.pc_client_secret_enc, secret_key=NEW) == "pc-secret"
    service = db.scalar(select(UserService).where(UserService.user_id == user.id))
    assert service is not None and service.temp_password_enc is not None
    assert decrypt(service.temp_password_enc, secret_key=NEW) == "Temp&Pass-1234567"
    with pytest.raises(SecretUnreadable):
        decrypt(service.temp_password_enc, secret_key=OLD)
    answer = db.get(IdempotentAnswer, (key.id, "k1"))
    assert answer is not None and decrypt(answer.body["sealed"].encode(), secret_key=NEW) == '{"a": 1}'


def test_every_encrypted_column_is_rotated() -> None:
    """A model column named *_enc that the rotation does not know would keep the old key for ever."""
    from shared.db.models import Base

    known = {(c.class_.__tablename__, c.key) for c in ENCRYPTED_COLUMNS}
    found = {(t.name, col.name) for t in Base.metadata.tables.values() for col in t.columns
             if col.name.endswith("_enc")}
    assert found == known
