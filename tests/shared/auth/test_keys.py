"""API keys: created hashed and scoped, authenticated through a short cache; scope rules."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from shared.auth import keys, scope
from shared.auth.principal import Principal
from shared.db.models import ApiKey, AuditEvent
from shared.errors import NotAllowed, ObjectNotFound
from shared.security import api_key_prefix
from tests.builders import Builder


@pytest.fixture(autouse=True)
def _fresh_cache() -> Any:
    keys.forget_cached_keys()
    yield
    keys.forget_cached_keys()


def test_create_key_stores_only_a_hash_and_audits(db: Session) -> None:
    key = keys.create_key(db, "operator")
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == api_key_prefix(key)))
    assert row is not None and key not in row.key_hash and row.role == "operator" and row.scope_id is None
    assert db.scalar(select(AuditEvent.action).where(AuditEvent.object_id == row.id)) == "api_key.created"


def test_create_key_checks_role_and_scope(db: Session) -> None:
    b = Builder(db)
    sp = b.provider()
    customer = b.customer(sp)
    with pytest.raises(ValueError, match="role"):
        keys.create_key(db, "admin")
    with pytest.raises(ValueError, match="service provider"):
        keys.create_key(db, "service-provider", None)
    with pytest.raises(ValueError, match="service provider"):
        keys.create_key(db, "service-provider", customer.id)
    with pytest.raises(ValueError, match="customer"):
        keys.create_key(db, "customer", sp.id)
    assert keys.create_key(db, "service-provider", sp.id).startswith("m365p_")
    assert keys.create_key(db, "customer", customer.id).startswith("m365p_")


def test_authenticate_hits_the_database_once_per_key(db: Session, maker: sessionmaker[Session]) -> None:
    key = keys.create_key(db, "operator")
    db.flush()
    queries: list[str] = []
    event.listen(db.connection(), "before_cursor_execute", lambda *a: queries.append(a[2]))
    first = keys.authenticate(key, maker)
    again = keys.authenticate(key, maker)
    assert first == again and isinstance(first, Principal) and first.role == "operator"
    assert len([q for q in queries if "api_keys" in q]) == 1
    assert keys.cached_principal(key) == (True, first)


def test_unknown_malformed_and_revoked_keys(db: Session, maker: sessionmaker[Session]) -> None:
    assert keys.authenticate("not-a-key", maker) is None
    assert keys.cached_principal("not-a-key") == (True, None)
    key = keys.create_key(db, "operator")
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == api_key_prefix(key)))
    assert row is not None
    assert keys.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B"), maker) is None
    from shared.db.types import utcnow

    row.revoked_at = utcnow()
    db.flush()
    assert keys.authenticate(key, maker) is None


def test_scope_rules(db: Session) -> None:
    b = Builder(db)
    sp, other = b.provider(), b.provider()
    mine, theirs = b.customer(sp), b.customer(other)
    op = Principal("k", "operator")
    sp_key = Principal("k", "service-provider", sp.id)
    cust_key = Principal("k", "customer", mine.id)
    assert scope.customer(db, op, theirs.id) is theirs
    assert scope.customer(db, sp_key, mine.id) is mine
    for who in (sp_key, cust_key):
        with pytest.raises(ObjectNotFound):
            scope.customer(db, who, theirs.id)
        with pytest.raises(ObjectNotFound):
            scope.provider(db, who, other.id)
    with pytest.raises(ObjectNotFound):
        scope.provider(db, cust_key, sp.id)
    with pytest.raises(NotAllowed):
        scope.require_operator(sp_key, "create plans")
    with pytest.raises(NotAllowed):
        scope.require_manager(cust_key, "enable plans")
    scope.require_manager(sp_key, "enable plans")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_revoked_key_stops_working_within_a_second(db: Session, maker: sessionmaker[Session],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Every API process holds a cache like this one; its TTL bounds how long any of them honours a revoked key.
    assert keys.CACHE_TTL_S <= 1.0
    clock = _Clock()
    monkeypatch.setattr(keys._cache, "clock", clock)
    key = keys.create_key(db, "operator")
    db.flush()
    who = keys.authenticate(key, maker)
    assert who is not None
    assert keys.revoke_key(db, who.key_id, actor="test")
    db.flush()
    assert keys.authenticate(key, maker) == who  # this instant: still the cached answer
    clock.now += keys.CACHE_TTL_S + 0.001
    assert keys.cached_principal(key) == (False, None)
    assert keys.authenticate(key, maker) is None
    assert db.scalar(select(AuditEvent.action).where(AuditEvent.object_id == who.key_id,
                                                     AuditEvent.action == "api_key.revoked"))


def test_an_expired_key_stops_working(db: Session, maker: sessionmaker[Session],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from shared.db.types import utcnow

    clock = _Clock()
    monkeypatch.setattr(keys._cache, "clock", clock)
    key = keys.create_key(db, "operator", expires_in=timedelta(days=1))
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == api_key_prefix(key)))
    assert row is not None and row.expires_at is not None
    assert keys.authenticate(key, maker) is not None
    row.expires_at = utcnow() - timedelta(seconds=1)
    db.flush()
    clock.now += keys.CACHE_TTL_S + 0.001
    assert keys.authenticate(key, maker) is None
    assert [k.state for k in keys.list_keys(db) if k.id == row.id] == ["expired"]
    with pytest.raises(ValueError, match="expiry"):
        keys.create_key(db, "operator", expires_in=timedelta(0))


def test_an_expiring_key_leaves_the_cache_when_it_expires() -> None:
    cache = keys._Cache(clock=_Clock())
    who = Principal("k", "operator")
    cache.put("digest", who, valid_for=0.25)
    assert cache.get("digest") == (True, who)
    cache.clock.now += 0.3  # type: ignore[attr-defined]
    assert cache.get("digest") == (False, None)


def test_keys_list_never_shows_a_key_or_its_hash(db: Session) -> None:
    key = keys.create_key(db, "operator", name="ops")
    row = db.scalar(select(ApiKey).where(ApiKey.prefix == api_key_prefix(key)))
    assert row is not None
    (info,) = [k for k in keys.list_keys(db) if k.id == row.id]
    assert info.state == "active" and info.name == "ops" and info.prefix == row.prefix
    assert key not in repr(info) and row.key_hash not in repr(info)
    assert keys.revoke_key(db, row.prefix) and not keys.revoke_key(db, "no-such-key")
    (info,) = [k for k in keys.list_keys(db) if k.id == row.id]
    assert info.state == "revoked"
