"""Finding the server binaries, and what a missing one means: a skip locally, a failure under CI=true."""
from __future__ import annotations

from pathlib import Path

import pytest

import tests.conftest as conftest
from tests.harness import binaries


def _missing() -> str:
    raise binaries.MissingBinary("redis-server is not installed")


def test_a_missing_binary_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conftest, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="not installed"):
        conftest.require_binary(_missing)
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true: tests must not skip"):
        conftest.require_binary(_missing)
    assert conftest.require_binary(lambda: "found") == "found"


def test_binaries_are_found_where_the_environment_says(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_SERVER", "/opt/redis/bin/redis-server")
    assert binaries.redis_server() == "/opt/redis/bin/redis-server"
    monkeypatch.delenv("REDIS_SERVER")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(binaries.MissingBinary):
        binaries.redis_server()
    for tool in ("initdb", "postgres"):
        (tmp_path / tool).touch()
    monkeypatch.setenv("PG_BINDIR", str(tmp_path))
    assert binaries.postgres_bindir() == tmp_path
