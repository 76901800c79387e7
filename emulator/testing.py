"""`running_emulator()`: the emulator in a subprocess for tests, with a ready-made trusting httpx client."""
from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

STARTUP_TIMEOUT_S = 30.0


class RunningEmulator:
    def __init__(self, url: str, ca_path: str, process: subprocess.Popen[bytes], faults: dict[str, Any],
                 log_path: str | None = None) -> None:
        self.url = url
        self.ca_path = ca_path
        self.process = process
        self.log_path = log_path  # the process's output, while it runs
        self._faults = faults
        # The subprocess inherits EMULATOR_CONTROL_TOKEN, so the control client presents the same one.
        token = os.environ.get("EMULATOR_CONTROL_TOKEN")
        self._control = self.client(headers={"Authorization": f"Bearer {token}"} if token else None)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_path)

    def client(self, **kwargs: Any) -> httpx.Client:
        """An httpx client on the emulator's URL that trusts its CA."""
        kwargs.setdefault("timeout", 30.0)
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), **kwargs)

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 30.0)
        return httpx.AsyncClient(base_url=self.url, verify=self.ssl_context(), **kwargs)

    def reset(self) -> None:
        """Empty world and zero counters; the faults this emulator was started with apply again."""
        self._control.post("/_emulator/reset").raise_for_status()
        if self._faults:
            self.set_faults(**self._faults)

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        response = self._control.put("/_emulator/faults", json=faults)
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        return self._control.get("/_emulator/stats").json()

    def clock(self) -> dict[str, Any]:
        """The emulator's clock: `{frozen, time, now}`."""
        response = self._control.get("/_emulator/clock")
        response.raise_for_status()
        return response.json()

    def freeze_clock(self) -> dict[str, Any]:
        """Stop the emulator's clock: lag, mailbox delays, Retry-After and token expiry wait for `advance_clock`.
        `reset()` lets it run again in real time."""
        response = self._control.put("/_emulator/clock", json={"frozen": True})
        response.raise_for_status()
        return response.json()

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        response = self._control.post("/_emulator/clock/advance", json={"seconds": seconds})
        response.raise_for_status()
        return response.json()

    def resume_clock(self) -> dict[str, Any]:
        response = self._control.put("/_emulator/clock", json={"frozen": False})
        response.raise_for_status()
        return response.json()

    def add_partner(self, tenant_id: str, client_id: str, client_secret: str, **extra: Any) -> dict[str, Any]:
        body = {"tenant_id": tenant_id, "client_id": client_id, "client_secret": client_secret, **extra}
        response = self._control.post("/_emulator/partners", json=body)
        response.raise_for_status()
        return response.json()

    def add_tenant(self, **spec: Any) -> dict[str, Any]:
        response = self._control.post("/_emulator/tenants", json=spec)
        response.raise_for_status()
        return response.json()

    def tenant(self, tenant_id: str) -> dict[str, Any]:
        response = self._control.get(f"/_emulator/tenants/{tenant_id}")
        response.raise_for_status()
        return response.json()

    def device_codes(self) -> list[dict[str, Any]]:
        """Device-code sign-ins waiting for a person (user codes only)."""
        response = self._control.get("/_emulator/device-codes")
        response.raise_for_status()
        return list(response.json()["items"])

    def answer_device_code(self, user_code: str, *, approve: bool = True) -> dict[str, Any]:
        response = self._control.post(f"/_emulator/device-codes/{user_code}/{'approve' if approve else 'decline'}")
        response.raise_for_status()
        return response.json()

    def token(self, tenant_id: str, client_id: str, client_secret: str,
              resource: str = "https://graph.microsoft.com") -> str:
        """A client-credentials access token straight from the token endpoint (no msal cache)."""
        response = self._control.post(f"/{tenant_id}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
            "scope": f"{resource}/.default"})
        response.raise_for_status()
        return str(response.json()["access_token"])

    def close(self) -> None:
        self._control.close()


@contextmanager
def running_emulator(*, state_file: str | None = None, **faults: Any) -> Iterator[RunningEmulator]:
    """Start `python -m emulator` on a free port, wait until it answers, stop it on exit."""
    workdir = tempfile.mkdtemp(prefix="emulator-")
    ca_path = os.path.join(workdir, "ca.pem")
    ready_path = os.path.join(workdir, "ready.json")
    command = [sys.executable, "-m", "emulator", "--host", "127.0.0.1", "--port", "0",
               "--ca-out", ca_path, "--ready-file", ready_path]
    if state_file:
        command += ["--state", state_file]
    log_path = os.path.join(workdir, "emulator.log")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    emulator: RunningEmulator | None = None
    try:
        url = _wait_ready(process, ready_path, ca_path, log_path)
        emulator = RunningEmulator(url, ca_path, process, faults, log_path)
        if faults:
            emulator.set_faults(**faults)
        yield emulator
    finally:
        if emulator is not None:
            emulator.close()
        _stop(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(process: subprocess.Popen[bytes], ready_path: str, ca_path: str, log_path: str) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path, errors="replace") as log:
                raise RuntimeError(f"emulator exited with {process.returncode}:\n{log.read()}")
        if url is None and os.path.exists(ready_path):
            with open(ready_path) as ready:
                url = json.load(ready)["url"]
        if url is not None:
            try:
                with httpx.Client(verify=ssl.create_default_context(cafile=ca_path), timeout=2) as probe:
                    if probe.get(f"{url}/_emulator/stats").status_code == 200:
                        return str(url)
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    raise TimeoutError(f"emulator did not answer within {STARTUP_TIMEOUT_S}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
