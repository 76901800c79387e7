"""docker-compose.yml: every service's command is one the CLI has, and the image is built from deploy/."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from typer.main import get_command

from commands.cli import app

ROOT = Path(__file__).resolve().parents[1]


def test_compose_services_use_cli_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    expected = {"postgres", "redis", "emulator", "migrate", "api", "worker", "beat", "flower"}
    assert expected <= set(services)
    cli_commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name in expected - {"postgres", "redis"}:
        svc = services[name]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert svc["command"][0] in cli_commands, f"{name}: {svc['command'][0]} is not a provisioner command"
    assert "FLOWER_BASIC_AUTH" in services["flower"]["environment"]


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "\nUSER provisioner" in text
    assert "HEALTHCHECK" in text
    assert "--require-hashes" in text


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_the_api_is_published_only_through_tls() -> None:
    services = _compose()["services"]
    assert services["api"]["ports"] == ["127.0.0.1:8000:8000"]
    caddy = services["caddy"]
    assert "443:443" in caddy["ports"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    assert "reverse_proxy api:8000" in caddyfile and "{$API_DOMAIN}" in caddyfile
    for name, svc in services.items():  # every other published port is on loopback
        for port in svc.get("ports", []):
            assert name == "caddy" or str(port).startswith("127.0.0.1:"), f"{name} publishes {port}"


def test_the_emulator_runs_only_under_its_profile_with_a_control_token() -> None:
    services = _compose()["services"]
    emulator = services["emulator"]
    assert emulator["profiles"] == ["emulator"]
    assert "EMULATOR_CONTROL_TOKEN" in emulator["environment"]
    assert all("profiles" not in svc for name, svc in services.items() if name != "emulator")


def test_the_image_installs_only_the_runtime_lock_on_a_pinnable_base() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    installs = [line for line in text.splitlines() if "pip install" in line and " -r " in line]
    assert installs and all("requirements/runtime.txt" in line for line in installs)
    assert not [line for line in text.splitlines() if "lock.txt" in line and not line.startswith("#")]
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(line.startswith("FROM ${PYTHON_IMAGE}") for line in froms)
    assert "\nARG PYTHON_IMAGE=" in text


def test_the_api_gets_a_metrics_token() -> None:
    # ENVIRONMENT is production here: without METRICS_TOKEN the API's /metrics stays closed.
    assert "METRICS_TOKEN" in _compose()["services"]["api"]["environment"]
