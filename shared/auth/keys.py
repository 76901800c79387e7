"""API keys: created (shown once, stored hashed, optionally expiring), listed, revoked; authenticated through a
one-second in-process cache."""
from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.auth.principal import CUSTOMER, ROLES, SERVICE_PROVIDER, Principal
from shared.db.models import ApiKey, Customer, ServiceProvider
from shared.db.types import utcnow
from shared.security import api_key_prefix, hash_api_key, new_api_key

# A revoked key keeps working for at most this long in each API process (every process holds its own cache,
# so this bounds all of them): one database read per live key per second and process, none per call.
CACHE_TTL_S = 1.0
# Unknown keys are remembered briefly too, so a client hammering with a bad key cannot hammer the database.
NEGATIVE_TTL_S = 5.0
CACHE_MAX = 10_000


def create_key(session: Session, role: str, scope_id: str | None = None, *, name: str | None = None,
               actor: str = "cli", expires_in: timedelta | None = None) -> str:
    """A new key for `role` (scoped to a service provider or customer id); returns it once. Caller commits."""
    if expires_in is not None and expires_in <= timedelta(0):
        raise ValueError("the expiry must be in the future")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == SERVICE_PROVIDER and (not scope_id or session.get(ServiceProvider, scope_id) is None):
        raise ValueError("a service-provider key needs --scope <existing service provider id>")
    if role == CUSTOMER and (not scope_id or session.get(Customer, scope_id) is None):
        raise ValueError("a customer key needs --scope <existing customer id>")
    if role not in (SERVICE_PROVIDER, CUSTOMER):
        scope_id = None
    key, prefix, digest = new_api_key()
    expires_at = utcnow() + expires_in if expires_in is not None else None
    row = ApiKey(prefix=prefix, key_hash=digest, role=role, scope_id=scope_id, name=name, expires_at=expires_at)
    session.add(row)
    session.flush()
    audit.record(session, actor, "api_key.created", "api_key", row.id,
                 {"role": role, "scope_id": scope_id, "expires_at": expires_at.isoformat() if expires_at else None})
    return key


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What `keys list` shows: never the key nor its hash."""

    id: str
    prefix: str
    role: str
    scope_id: str | None
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"


def list_keys(session: Session) -> list[KeyInfo]:
    rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
    return [KeyInfo(r.id, r.prefix, r.role, r.scope_id, r.name, r.created_at, r.expires_at, r.revoked_at)
            for r in rows]


def revoke_key(session: Session, key_id: str, *, actor: str = "cli") -> bool:
    """Revoke a key by id or prefix; False when there is none. Every process refuses it within CACHE_TTL_S.
    Caller commits."""
    row = session.get(ApiKey, key_id) or session.scalar(select(ApiKey).where(ApiKey.prefix == key_id))
    if row is None:
        return False
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(session, actor, "api_key.revoked", "api_key", row.id, {"role": row.role})
    return True


class _Cache:
    """Key hash → principal (or None for a refused key), each entry with its own expiry."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()
        self.clock = clock

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < self.clock():
            return False, None
        return True, entry[1]

    def put(self, digest: str, principal: Principal | None, *, valid_for: float | None = None) -> None:
        ttl = CACHE_TTL_S if principal else NEGATIVE_TTL_S
        if valid_for is not None:  # an expiring key leaves the cache when it expires, not a TTL later
            ttl = min(ttl, valid_for)
        with self._lock:
            if len(self._entries) >= CACHE_MAX:
                self._entries.clear()  # crude but bounded; a refill costs one query per live key
            self._entries[digest] = (self.clock() + ttl, principal)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_cache = _Cache()


def cached_principal(token: str) -> tuple[bool, Principal | None]:
    """(known, principal) from the cache alone; `known` is False when the database must be asked."""
    if api_key_prefix(token) is None:
        return True, None
    return _cache.get(hash_api_key(token))


def authenticate(token: str, session_factory: Callable[[], Session]) -> Principal | None:
    """The principal for a bearer token, or None; a database hit only on a cache miss."""
    prefix = api_key_prefix(token)
    if prefix is None:
        return None
    digest = hash_api_key(token)
    known, principal = _cache.get(digest)
    if known:
        return principal
    with session_factory() as session:
        row = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    valid_for = None
    if row is not None and row.revoked_at is None and hmac.compare_digest(row.key_hash, digest):
        valid_for = (row.expires_at - utcnow()).total_seconds() if row.expires_at is not None else None
        if valid_for is None or valid_for > 0:
            principal = Principal(key_id=row.id, role=row.role, scope_id=row.scope_id)
    _cache.put(digest, principal, valid_for=valid_for if principal else None)
    return principal


def forget_cached_keys() -> None:
    """Drop every cached key (tests; revocation tooling)."""
    _cache.clear()
