"""Temporary passwords (Entra's rules, uniform, CSPRNG) and secrets at rest (per key, never mixed up)."""
from __future__ import annotations

import random
import string
from collections import Counter

import pytest

from shared.security import PASSWORD_LENGTH, SecretUnreadable, decrypt, encrypt, generate_password, reencrypt

SYMBOLS = "!@#$%^&*-_=+?"
ALPHABET = set(string.ascii_letters + string.digits + SYMBOLS)


def test_passwords_meet_entras_complexity_rules() -> None:
    for _ in range(2000):
        p = generate_password()
        assert len(p) == PASSWORD_LENGTH and set(p) <= ALPHABET
        assert any(c.isupper() for c in p) and any(c.islower() for c in p)
        assert any(c.isdigit() for c in p) and any(c in SYMBOLS for c in p)
    assert len(generate_password(64)) == 64
    with pytest.raises(ValueError):
        generate_password(15)


def test_passwords_are_unique_and_every_character_is_about_as_likely() -> None:
    passwords = [generate_password() for _ in range(5000)]
    assert len(set(passwords)) == len(passwords)
    counts = Counter("".join(passwords))
    assert set(counts) == ALPHABET
    # 100,000 characters over 75 symbols: about 1,333 each; a modulo bias or a stuck class would show.
    expected = sum(counts.values()) / len(ALPHABET)
    assert all(0.75 * expected < n < 1.5 * expected for n in counts.values()), counts.most_common(3)
    # The required classes do not sit at fixed places: every position sees every class.
    for position in range(PASSWORD_LENGTH):
        column = {p[position] for p in passwords}
        assert column & set(string.ascii_uppercase) and column & set(SYMBOLS) and column & set(string.digits)


def test_passwords_do_not_come_from_the_seedable_generator() -> None:
    random.seed(19)
    first = generate_password()
    random.seed(19)
    assert generate_password() != first


def test_a_secret_opens_only_with_the_key_that_sealed_it() -> None:
    sealed = encrypt("s3cret", secret_key="a" * 40)
    assert decrypt(sealed, secret_key="a" * 40) == "s3cret"
    with pytest.raises(SecretUnreadable):
        decrypt(sealed, secret_key="b" * 40)
    assert decrypt(encrypt("other", secret_key="b" * 40), secret_key="b" * 40) == "other"


def test_secret_keys_decrypt_with_every_key_and_encrypt_with_the_newest(settings_env: pytest.MonkeyPatch) -> None:
    old, new = "o" * 32, "n" * 32
    settings_env.delenv("SECRET_KEYS", raising=False)
    settings_env.setenv("SECRET_KEY", old)
    sealed_old = encrypt("before")
    settings_env.setenv("SECRET_KEYS", f"{new},{old}")
    from shared.settings import reset_settings

    reset_settings()
    assert decrypt(sealed_old) == "before"  # a stored secret survives the rotation
    sealed_new = encrypt("after")
    assert decrypt(sealed_new, secret_key=new) == "after"  # the newest key encrypts
    with pytest.raises(SecretUnreadable):
        decrypt(sealed_new, secret_key=old)
    assert decrypt(reencrypt(sealed_old), secret_key=new) == "before"
