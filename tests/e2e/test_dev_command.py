"""`provisioner dev`: the embedded default comes up on SQLite, answers, and stops cleanly on Ctrl-C."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_dev_starts_everything_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "BROKER_URL", "REDIS_URL", "SECRET_KEY", "MS_", "ENVIRONMENT"))}
    api, flower, emu = _port(), _port(), _port()
    log = (tmp_path / "dev.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "commands.cli", "dev", "--api-port", str(api), "--flower-port", str(flower),
         "--emulator-port", str(emu), "--var", str(tmp_path / "var")],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{api}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy:
                break
            time.sleep(0.5)
        output = (tmp_path / "dev.log").read_text(errors="replace")
        assert healthy, f"/healthz not 200 within 60 s:\n{output[-3000:]}"
        ready = httpx.get(f"http://127.0.0.1:{api}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        key = (tmp_path / "var" / "operator_key").read_text().strip()
        assert key in (tmp_path / "dev.log").read_text(), "the operator key is printed"
        me = httpx.get(f"http://127.0.0.1:{api}/v1/customers", headers={"Authorization": f"Bearer {key}"})
        assert me.status_code == 200 and len(me.json()["items"]) >= 1, me.text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the terminal's process group
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    assert rc == 0, (tmp_path / "dev.log").read_text(errors="replace")[-3000:]
    # No child is left listening.
    for port in (api, emu):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open after Ctrl-C"
