"""docker-compose.yml: every service's command is one the CLI has, and the image is built from deploy/."""
from __future__ import annotations

from pathlib import Path

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
