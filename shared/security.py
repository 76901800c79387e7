"""Secrets at rest (MultiFernet over SECRET_KEYS, newest first), API key hashing and temporary passwords."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
import string

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.settings import get_settings

_SYMBOLS = "!@#$%^&*-_=+?"
PASSWORD_LENGTH = 20
_system_random = secrets.SystemRandom()


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with the current SECRET_KEY."""


def _fernet(secret_key: str | None = None) -> MultiFernet:
    keys = [secret_key] if secret_key else get_settings().secret_key_ring
    if not keys:
        raise SecretUnreadable("SECRET_KEY is not set")
    return _multi_fernet_for(tuple(keys))


@functools.lru_cache(maxsize=4)
def _multi_fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    # The first key encrypts; every key is tried to decrypt, so a rotation never strands a stored secret.
    return MultiFernet([_fernet_for(k) for k in keys])


@functools.lru_cache(maxsize=16)
def _fernet_for(key: str) -> Fernet:
    # Derived once per key: every accepted user encrypts a password.
    digest = hashlib.sha256(b"m365-provisioner/secrets-at-rest\x00" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(plain: str, *, secret_key: str | None = None) -> bytes:
    return _fernet(secret_key).encrypt(plain.encode())


def decrypt(token: bytes, *, secret_key: str | None = None) -> str:
    try:
        return _fernet(secret_key).decrypt(token).decode()
    except InvalidToken:
        raise SecretUnreadable("stored secret cannot be decrypted (was SECRET_KEY changed?)") from None


def reencrypt(token: bytes) -> bytes:
    """The same secret under the newest key (MultiFernet.rotate); its original timestamp is kept."""
    try:
        return _fernet().rotate(token)
    except InvalidToken:
        raise SecretUnreadable("stored secret cannot be decrypted with any of SECRET_KEYS") from None


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    """A temporary password meeting Entra's complexity rules: all four classes, CSPRNG."""
    if length < 16:
        raise ValueError("temporary passwords are at least 16 characters")
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, _SYMBOLS]
    alphabet = "".join(classes)
    chars = [secrets.choice(c) for c in classes]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    _system_random.shuffle(chars)  # the four required characters land anywhere
    return "".join(chars)


def new_api_key() -> tuple[str, str, str]:
    """(full key shown once, lookup prefix, hash stored)."""
    prefix = secrets.token_hex(6)
    key = f"m365p_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_api_key(key)


def api_key_prefix(key: str) -> str | None:
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != "m365p" or len(parts[1]) != 12:
        return None
    return parts[1]


def hash_api_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast keyed hash is enough (no password stretching).
    return hashlib.sha256(b"m365-provisioner/api-key\x00" + key.encode()).hexdigest()


def api_key_matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_api_key(key), stored_hash)
