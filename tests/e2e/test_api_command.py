"""`provisioner api --workers 2`: one listening socket per process, a dead process replaced, clean stop."""
from __future__ import annotations

import os
import re
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


def listeners(port: int) -> set[int]:
    """Pids of the processes listening on the port, each on its own socket."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True).stdout
    return {int(pid) for pid in re.findall(r"pid=(\d+)", out)}


def wait_for(check, seconds: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what}")


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_api_workers_listen_on_their_own_sockets_and_are_replaced(tmp_path: Path) -> None:
    port = _port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BROKER_URL", "MS_"))},
           "ENVIRONMENT": "test", "SECRET_KEY": "t" * 40, "DATABASE_URL": f"sqlite:///{tmp_path}/api.db",
           "BROKER_URL": "memory://"}
    log = (tmp_path / "api.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "commands.cli", "api", "--port", str(port), "--workers", "2"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: healthy(port) and len(listeners(port)) == 2, 60, "two processes listening")
        first = listeners(port)
        assert proc.pid not in first  # the parent only supervises

        # Connections opened together are spread by the kernel: with 40 of them both processes get some.
        # Each is answered first, so it is surely accepted (a connection still in a backlog has no pid).
        conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        for c in conns:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            c.settimeout(30)
            assert b" 200 " in c.recv(4096)
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        served_by = {int(pid) for pid in re.findall(r"pid=(\d+)", out)}
        for c in conns:
            c.close()
        assert served_by == first, out

        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(listeners(port)) == 2 and victim not in listeners(port), 30, "a replacement process")
        assert healthy(port)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = proc.wait(timeout=45)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        log.close()
    assert rc == 0, (tmp_path / "api.log").read_text()[-3000:]
    assert not listeners(port), "every process stopped"
