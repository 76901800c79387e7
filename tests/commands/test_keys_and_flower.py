"""`provisioner keys` (create with expiry, list without secrets, revoke, rotate-secrets) and `provisioner flower`
(basic auth outside dev, no SECRET_KEY needed)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from commands.cli import app
from shared.auth import keys
from shared.db.engine import dispose_engine
from shared.db.migrate import upgrade

runner = CliRunner()


@pytest.fixture
def cli_db(settings_env: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[pytest.MonkeyPatch]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    settings_env.setenv("DATABASE_URL", url)
    settings_env.setenv("SECRET_KEY", "k" * 32)
    dispose_engine()
    upgrade(url)
    keys.forget_cached_keys()
    yield settings_env
    dispose_engine()
    keys.forget_cached_keys()


def test_keys_create_list_and_revoke(cli_db: pytest.MonkeyPatch) -> None:
    created = runner.invoke(app, ["keys", "create", "--role", "operator", "--expires-in-days", "30",
                                  "--name", "ci"])
    assert created.exit_code == 0, created.output
    key = created.output.strip()
    prefix = key.split("_")[1]
    listed = runner.invoke(app, ["keys", "list"])
    assert listed.exit_code == 0 and key not in listed.output
    (line,) = [ln for ln in listed.output.splitlines() if prefix in ln]
    assert "\toperator\t" in line and "\tactive\t" in line and "never" not in line and line.endswith("ci")
    revoked = runner.invoke(app, ["keys", "revoke", prefix])
    assert revoked.exit_code == 0, revoked.output
    assert "\trevoked\t" in runner.invoke(app, ["keys", "list"]).output
    unknown = runner.invoke(app, ["keys", "revoke", "nope"])
    assert unknown.exit_code == 2


def test_keys_create_refuses_an_expiry_in_the_past(cli_db: pytest.MonkeyPatch) -> None:
    result = runner.invoke(app, ["keys", "create", "--role", "operator", "--expires-in-days", "0"])
    assert result.exit_code == 2 and "expiry" in result.output


def test_rotate_secrets_reports_each_column(cli_db: pytest.MonkeyPatch) -> None:
    cli_db.setenv("SECRET_KEYS", f"{'n' * 32},{'k' * 32}")
    result = runner.invoke(app, ["keys", "rotate-secrets"])
    assert result.exit_code == 0, result.output
    assert "service_providers.pc_client_secret_enc: 0 re-encrypted" in result.output


class _FakeCelery:
    def __init__(self) -> None:
        self.started: list[str] | None = None

    def start(self, argv: list[str]) -> None:
        self.started = argv


@pytest.fixture
def fake_flower(settings_env: pytest.MonkeyPatch) -> Iterator[_FakeCelery]:
    import shared.settings
    import worker.app

    fake = _FakeCelery()
    settings_env.setattr(worker.app, "get_app", lambda: fake)
    settings_env.setattr(shared.settings, "_secret_optional", False)
    for name in ("SECRET_KEY", "SECRET_KEYS", "FLOWER_BASIC_AUTH"):
        settings_env.delenv(name, raising=False)
    settings_env.setenv("ENVIRONMENT", "production")
    yield fake


def test_flower_refuses_to_start_without_basic_auth_outside_dev(fake_flower: _FakeCelery) -> None:
    result = runner.invoke(app, ["flower", "--port=5555"])
    assert result.exit_code != 0 and fake_flower.started is None
    assert "FLOWER_BASIC_AUTH" in str(result.exception)


def test_flower_starts_with_basic_auth_and_without_secret_key(fake_flower: _FakeCelery,
                                                              settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("FLOWER_BASIC_AUTH", "admin:pw")
    result = runner.invoke(app, ["flower", "--port=5555"])
    assert result.exit_code == 0, result.output
    assert fake_flower.started == ["flower", "--port=5555", "--basic-auth=admin:pw"]


def test_flower_in_dev_may_run_without_auth(fake_flower: _FakeCelery, settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("ENVIRONMENT", "dev")
    result: Any = runner.invoke(app, ["flower"])
    assert result.exit_code == 0 and fake_flower.started == ["flower"]
