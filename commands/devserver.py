"""`provisioner dev`: every process of the product in one terminal, with prefixed logs; no child outlives it."""
from __future__ import annotations

import contextlib
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import IO

import httpx

from commands.lifeline import Lifeline

COLORS = {"emulator": "35", "api": "32", "worker": "36", "beat": "33", "flower": "34", "migrate": "37", "dev": "1"}
STOP_TIMEOUT_S = 35.0  # a little more than the worker's soft-shutdown window
# Closing the terminal (SIGHUP), Ctrl-C and SIGTERM all stop everything. Handlers are set explicitly:
# a shell's `trap '' INT` or a background job hands SIGINT down ignored, and Python keeps it so.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(Exception):
    """A stop signal arrived while the supervisor was still starting things."""


class Supervisor:
    """Starts children in their own process groups, relays their output, stops them all together.

    Every child gets the read end of one pipe (`Lifeline`): if this process dies without stopping
    them (SIGKILL, a crash), each child sees EOF and ends its own process group.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = threading.Event()
        self.lifeline = Lifeline()
        self._lock = threading.Lock()

    def handle_signals(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_requested.set()

    def say(self, name: str, line: str) -> None:
        color = COLORS.get(name, "0")
        prefix = f"\x1b[{color}m{name:>8} |\x1b[0m " if sys.stdout.isatty() else f"{name:>8} | "
        with self._lock, contextlib.suppress(OSError):  # a closed terminal must not stop the stopping
            sys.stdout.write(prefix + line.rstrip("\n") + "\n")
            sys.stdout.flush()

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        self.check()
        cmd = [sys.executable, "-m", "commands.cli", *args]
        proc = subprocess.Popen(cmd, env=self.lifeline.child_env(self.env), pass_fds=self.lifeline.pass_fds,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs[name] = proc
        threading.Thread(target=self._relay, args=(name, proc.stdout), daemon=True).start()
        return proc

    def run_once(self, name: str, *args: str) -> None:
        """A child that runs to its end (migrate); a stop signal meanwhile stops it too."""
        proc = self.start(name, *args)
        while proc.poll() is None:
            self.check()
            self.stop_requested.wait(0.2)
        del self.procs[name]
        if proc.returncode:
            raise RuntimeError(f"{name} exited {proc.returncode}")

    def check(self) -> None:
        if self.stop_requested.is_set():
            raise Stopped

    def wait_for(self, pred: Callable[[], object], timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.check()
            try:
                if pred():
                    return
            except (httpx.HTTPError, OSError):
                pass
            self.stop_requested.wait(0.2)  # the supervisor's start-up poll; not a task
        raise RuntimeError(f"timed out waiting for {what}")

    def _relay(self, name: str, stream: IO[bytes] | None) -> None:
        if stream is None:
            return
        for raw in iter(stream.readline, b""):  # drained to the end even when nobody sees it: no child blocks
            self.say(name, raw.decode(errors="replace"))

    def dead(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def stop(self) -> None:
        """SIGTERM every group, SIGKILL what is left after STOP_TIMEOUT_S, then every group once more:
        a child's own children (pool processes, uvicorn workers) share its group and go with it."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say("dev", f"{name} did not stop in time; killing it")
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # the group outlives its leader while a member lives
            proc.wait()
        self.lifeline.close()


def _secret_key(var: Path) -> str:
    path = var / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def dev_environment(var: Path, emulator_port: int) -> dict[str, str]:
    root = f"https://127.0.0.1:{emulator_port}"
    env = dict(os.environ)
    env.setdefault("ENVIRONMENT", "dev")
    env.setdefault("DATABASE_URL", f"sqlite:///{var / 'provisioner.db'}")
    env.setdefault("BROKER_URL", f"sqla+sqlite:///{var / 'broker.db'}")
    env.setdefault("SECRET_KEY", _secret_key(var))
    env.setdefault("BEAT_DIR", str(var))
    for name in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL"):
        env.setdefault(name, root)
    env.setdefault("MS_CA_BUNDLE", str(var / "emulator-ca.pem"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_dev(*, api_port: int, flower_port: int, emulator_port: int, concurrency: int, api_workers: int = 1,
            var: str) -> int:
    var_dir = Path(var).resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = dev_environment(var_dir, emulator_port)
    os.environ.update(env)  # the seeding below runs in this process with the same settings
    sup = Supervisor(env)
    sup.handle_signals()  # before the first child: children start with default signal dispositions
    try:
        return _start_and_watch(sup, var_dir, api_port=api_port, flower_port=flower_port,
                                emulator_port=emulator_port, concurrency=concurrency, api_workers=api_workers)
    except Stopped:
        return 0
    except (RuntimeError, httpx.HTTPError) as exc:
        sup.say("dev", f"start-up failed: {exc}")
        return 1
    finally:
        sup.say("dev", "stopping")
        sup.stop()


def _start_and_watch(sup: Supervisor, var_dir: Path, *, api_port: int, flower_port: int, emulator_port: int,
                     concurrency: int, api_workers: int) -> int:
    """The ordered start, each step waiting for the previous one to be ready; then watch until told to stop."""
    ca = Path(sup.env["MS_CA_BUNDLE"])
    with contextlib.suppress(FileNotFoundError):
        ca.unlink()  # a new CA is generated at every emulator start
    sup.start("emulator", "emulator", "--port", str(emulator_port), "--ca-out", str(ca),
              "--state", str(var_dir / "emulator-state.json"))
    sup.wait_for(ca.exists, 30, "the emulator's CA")
    trust = ssl.create_default_context(cafile=str(ca))
    sup.wait_for(lambda: httpx.get(f"https://127.0.0.1:{emulator_port}/_emulator/stats", verify=trust).is_success,
                 30, "the emulator")
    sup.say("dev", "migrating the database")
    sup.run_once("migrate", "migrate")
    from commands.demo import seed_demo

    key = seed_demo(emulator_root=f"https://127.0.0.1:{emulator_port}", ca_path=str(ca), var=var_dir)
    # Printed before the API starts: whoever sees /healthz answer can already find the key in the output.
    sup.say("dev", f"Operator API key: {key}")
    sup.start("api", "api", "--port", str(api_port), "--workers", str(api_workers))
    sup.start("worker", "worker", "-P", "threads", "-c", str(concurrency), "-n", "dev@%h")
    sup.start("beat", "beat")
    sup.start("flower", "flower", f"--port={flower_port}", "--address=127.0.0.1")
    sup.wait_for(lambda: httpx.get(f"http://127.0.0.1:{api_port}/healthz").is_success, 60, "the API")
    for line in (
        f"API        http://127.0.0.1:{api_port}  (docs: /docs, OpenAPI: /openapi.json)",
        f"Flower     http://127.0.0.1:{flower_port}",
        f"Emulator   https://127.0.0.1:{emulator_port}  (CA: {ca})",
        f"Operator API key: {key}",
        "Ctrl-C stops everything.",
    ):
        sup.say("dev", line)
    while not sup.stop_requested.is_set():
        name = sup.dead()
        if name:
            sup.say("dev", f"{name} exited; stopping everything")
            return 1
        sup.stop_requested.wait(0.5)
    return 0
