"""Settings: validated once, bad values stop start-up with the variable named."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import ConfigError, get_settings, load_settings


def test_defaults_are_the_embedded_ones(settings_env: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "BROKER_URL", "REDIS_URL"):
        settings_env.delenv(name, raising=False)
    s = load_settings()
    assert s.database_url.startswith("sqlite:///")
    assert s.broker_url.startswith("sqla+sqlite:///")
    assert s.redis_url is None
    assert s.ms_graph_url == "https://graph.microsoft.com"


def test_cached_once_per_process(settings_env: pytest.MonkeyPatch) -> None:
    assert get_settings() is get_settings()


def test_postgresql_url_gets_the_psycopg_driver(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(("name", "value"), [
    ("DATABASE_URL", "mysql://x"),
    ("DATABASE_URL", "not a url"),
    ("BROKER_URL", "http://broker"),
    ("REDIS_URL", "localhost:6379"),
    ("MS_GRAPH_URL", "http://graph.example"),
    ("MAILBOX_DEADLINE_S", "-1"),
])
def test_bad_value_names_the_variable(settings_env: pytest.MonkeyPatch, name: str, value: str) -> None:
    settings_env.setenv(name, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert name in str(exc.value)


def test_secret_key_required_outside_dev(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("ENVIRONMENT", "production")
    settings_env.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "SECRET_KEY" in str(exc.value)
    settings_env.setenv("ENVIRONMENT", "dev")
    assert load_settings().secret_key is None


def test_a_config_error_is_an_ordinary_exception(settings_env: pytest.MonkeyPatch) -> None:
    """Not SystemExit: code that catches Exception (a health check, a test) sees it; nothing exits by surprise."""
    assert issubclass(ConfigError, Exception) and not issubclass(ConfigError, SystemExit)
    settings_env.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert str(exc.value) == ("configuration error: DATABASE_URL: must start with one of sqlite://, "
                              "postgresql://, postgresql+psycopg://")


BAD_ENV = {"PATH": "/usr/bin:/bin", "ENVIRONMENT": "production", "DATABASE_URL": "mysql://nope"}
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", [
    ["-m", "commands.cli", "migrate"],
    ["-m", "uvicorn", "commands.apiserver:create_app", "--factory", "--port", "0"],
    ["-m", "celery", "-A", "worker.app:app", "inspect", "ping"],
], ids=["provisioner", "uvicorn", "celery"])
def test_entry_points_stop_with_one_line_naming_the_setting(command: list[str]) -> None:
    proc = subprocess.run([sys.executable, *command], env={**BAD_ENV, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert any("DATABASE_URL" in ln for ln in lines), proc.stderr
    assert all(ln.startswith("configuration error:") for ln in lines), proc.stderr


def test_secret_keys_alone_satisfy_the_secret_requirement(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("ENVIRONMENT", "production")
    settings_env.delenv("SECRET_KEY", raising=False)
    settings_env.setenv("SECRET_KEYS", f"{'n' * 20}, {'o' * 20}")
    assert load_settings().secret_key_ring == ["n" * 20, "o" * 20]
    settings_env.setenv("SECRET_KEYS", f"short,{'o' * 20}")
    with pytest.raises(ConfigError, match="SECRET_KEYS"):
        load_settings()
    settings_env.delenv("SECRET_KEYS")
    settings_env.setenv("SECRET_KEY", "k" * 20)
    assert load_settings().secret_key_ring == ["k" * 20]


@pytest.mark.parametrize(("extra", "ok"), [
    ({}, False),
    ({"SMTP_STARTTLS": "true"}, True),
    ({"SMTP_SSL": "true", "SMTP_PORT": "465"}, True),
])
def test_an_smtp_login_needs_starttls_or_ssl(settings_env: pytest.MonkeyPatch, extra: dict[str, str],
                                             ok: bool) -> None:
    for name in ("SMTP_STARTTLS", "SMTP_SSL"):
        settings_env.delenv(name, raising=False)
    settings_env.setenv("SMTP_HOST", "mail.example.com")
    settings_env.setenv("SMTP_USERNAME", "relay")
    for name, value in extra.items():
        settings_env.setenv(name, value)
    if ok:
        assert load_settings().smtp_username == "relay"
        return
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert "SMTP_USERNAME" in str(exc.value) and "SMTP_STARTTLS" in str(exc.value) and "SMTP_SSL" in str(exc.value)


def test_smtp_without_a_login_may_stay_plain(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("SMTP_HOST", "relay.internal")
    settings_env.delenv("SMTP_USERNAME", raising=False)
    assert load_settings().smtp_host == "relay.internal"


def test_production_without_a_metrics_token_closes_metrics_not_the_api(settings_env: pytest.MonkeyPatch) -> None:
    from shared.settings import api_settings_warnings, metrics_closed

    settings_env.setenv("ENVIRONMENT", "production")
    settings_env.setenv("SECRET_KEY", "k" * 20)
    settings_env.delenv("METRICS_TOKEN", raising=False)
    settings = load_settings()  # every process starts: the contract's environment names no METRICS_TOKEN
    assert metrics_closed(settings)
    assert any("METRICS_TOKEN" in line for line in api_settings_warnings(settings))
    settings_env.setenv("METRICS_TOKEN", "short")
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        load_settings()
    settings_env.setenv("METRICS_TOKEN", "m" * 20)
    assert not metrics_closed(load_settings()) and api_settings_warnings(load_settings()) == []
    settings_env.setenv("ENVIRONMENT", "dev")
    settings_env.delenv("METRICS_TOKEN")
    assert not metrics_closed(load_settings())
