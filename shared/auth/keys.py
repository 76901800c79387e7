"""Creating API keys (shown once, stored hashed) and authenticating them through a short in-process cache."""
from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.auth.principal import CUSTOMER, ROLES, SERVICE_PROVIDER, Principal
from shared.db.models import ApiKey, Customer, ServiceProvider
from shared.security import api_key_prefix, hash_api_key, new_api_key

# A revoked key keeps working for at most this long in each API process; the price of no DB hit per call.
CACHE_TTL_S = 60.0
# Unknown keys are remembered briefly too, so a client hammering with a bad key cannot hammer the database.
NEGATIVE_TTL_S = 5.0
CACHE_MAX = 10_000


def create_key(session: Session, role: str, scope_id: str | None = None, *, name: str | None = None,
               actor: str = "cli") -> str:
    """A new key for `role` (scoped to a service provider or customer id); returns it once. Caller commits."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if role == SERVICE_PROVIDER and (not scope_id or session.get(ServiceProvider, scope_id) is None):
        raise ValueError("a service-provider key needs --scope <existing service provider id>")
    if role == CUSTOMER and (not scope_id or session.get(Customer, scope_id) is None):
        raise ValueError("a customer key needs --scope <existing customer id>")
    if role not in (SERVICE_PROVIDER, CUSTOMER):
        scope_id = None
    key, prefix, digest = new_api_key()
    row = ApiKey(prefix=prefix, key_hash=digest, role=role, scope_id=scope_id, name=name)
    session.add(row)
    session.flush()
    audit.record(session, actor, "api_key.created", "api_key", row.id, {"role": role, "scope_id": scope_id})
    return key


class _Cache:
    """Key hash → principal (or None for a refused key), each entry with its own expiry."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> tuple[bool, Principal | None]:
        entry = self._entries.get(digest)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, digest: str, principal: Principal | None) -> None:
        ttl = CACHE_TTL_S if principal else NEGATIVE_TTL_S
        with self._lock:
            if len(self._entries) >= CACHE_MAX:
                self._entries.clear()  # crude but bounded; a refill costs one query per live key
            self._entries[digest] = (time.monotonic() + ttl, principal)

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
    if row is not None and row.revoked_at is None and hmac.compare_digest(row.key_hash, digest):
        principal = Principal(key_id=row.id, role=row.role, scope_id=row.scope_id)
    _cache.put(digest, principal)
    return principal


def forget_cached_keys() -> None:
    """Drop every cached key (tests; revocation tooling)."""
    _cache.clear()
