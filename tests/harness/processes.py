"""The stack's processes for tests and bench: `provisioner worker|beat|api`, each in its own session."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import httpx

from .ports import HOST, free_port
from .waiting import wait_until

# The user and password the harness's Flower takes (basic auth, as outside ENVIRONMENT=dev it must).
FLOWER_AUTH = ("flower", "harness-flower-password")

ROOT = Path(__file__).resolve().parents[2]
# The product's command line (`provisioner ...`), run as a module so the tree under test is what runs.
PROVISIONER = "commands.cli"
QUEUES = "provisioning,polling,sync"


class Processes:
    """Workers, beats and API servers of one test, drill or bench run.

    Each child is the leader of its own process group, so a signal reaches it and its pool children
    and nothing else. Logs go to `logdir` (one file per name); it is removed on a clean exit and kept,
    for the post-mortem, when the block raised.
    """

    def __init__(self, env: dict[str, str], *, pool: str = "threads", logdir: Path | None = None) -> None:
        self.env = env
        self.pool = pool
        self.logdir = logdir or Path(tempfile.mkdtemp(prefix="stack-"))
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.exited: dict[str, int] = {}

    # -- starting ------------------------------------------------------------------------------------------------
    def spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, *,
              without: Sequence[str] = ()) -> subprocess.Popen[bytes]:
        """`python argv...` under `name`, with the stack's environment (plus `env`, less the names in `without`)."""
        assert name not in self.procs, f"{name} is already running"
        full = {k: v for k, v in {**self.env, **(env or {})}.items() if k not in without}
        with open(self.logdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, *argv], env=full, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT,
                                    start_new_session=True)
        self.procs[name] = proc
        return proc

    def worker(self, name: str = "w1", *, pool: str | None = None, concurrency: int = 4, module: str = PROVISIONER,
               env: dict[str, str] | None = None, loglevel: str = "INFO") -> subprocess.Popen[bytes]:
        """`provisioner worker -P <pool> -c <concurrency> ...` (or `module`, a test bootstrap taking the same)."""
        args = ["-m", module, "worker", "-P", pool or self.pool, "-c", str(concurrency), "-Q", QUEUES,
                "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", "-l", loglevel]
        return self.spawn(name, args, env)

    def beat(self, name: str = "beat", *, loglevel: str = "INFO") -> subprocess.Popen[bytes]:
        """`provisioner beat`, with its own schedule file."""
        return self.spawn(name, ["-m", PROVISIONER, "beat", "--schedule", str(self.logdir / f"{name}-schedule"),
                                 "-l", loglevel])

    def flower(self, port: int, name: str = "flower") -> subprocess.Popen[bytes]:
        """`provisioner flower` on 127.0.0.1:`port` behind basic auth as production runs it (`FLOWER_AUTH`), and
        without SECRET_KEY (it needs none); a test reads /api/tasks with `auth=FLOWER_AUTH`."""
        return self.spawn(name, ["-m", PROVISIONER, "flower", f"--port={port}", f"--address={HOST}"],
                          {"FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}, without=("SECRET_KEY", "SECRET_KEYS"))

    def api(self, name: str = "api", *, workers: int = 1, port: int | None = None, timeout: float = 60) -> int:
        """`provisioner api --workers N` on a free port, once /healthz answers; returns the port."""
        port = port or free_port()
        self.spawn(name, ["-m", PROVISIONER, "api", "--host", HOST, "--port", str(port), "--workers", str(workers)])

        def healthy() -> bool:
            if not self.alive(name):
                raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
            try:
                return httpx.get(f"http://{HOST}:{port}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout=timeout, what=f"{name} answering on port {port}", interval=0.2)
        return port

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        """Until the Celery worker `name` logged `ready.` (connected, consuming)."""
        def ready() -> bool:
            if not self.alive(name):
                raise AssertionError(f"{name} exited:\n{self.log(name)[-3000:]}")
            return " ready." in self.log(name)

        try:
            wait_until(ready, timeout=timeout, what=f"{name} ready")
        except TimeoutError as late:
            raise AssertionError(f"{late}:\n{self.log(name)[-3000:]}") from None

    def answering(self, count: int, timeout: float = 60) -> None:
        """Until `count` workers answer a Celery ping (this process on the stack's broker: publishing_as)."""
        from worker.app import get_app

        try:
            wait_until(lambda: len(get_app().control.ping(timeout=0.5) or []) >= count, timeout=timeout,
                       what=f"{count} worker(s) answering", interval=0)
        except TimeoutError as late:
            raise AssertionError(f"{late}:\n{self.logs()}") from None

    # -- stopping ------------------------------------------------------------------------------------------------
    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def send(self, name: str, sig: int) -> None:
        """`sig` to the whole group of `name`."""
        os.killpg(self.procs[name].pid, sig)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> int:
        """kill -9 (by default) of the whole group: no warm shutdown, no ack, no restore of unacked messages."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)
        self.exited[name] = proc.wait(timeout=30)
        return self.exited[name]

    def terminate(self, name: str, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM (Celery's warm/soft shutdown); returns (exit code, seconds it took)."""
        proc = self.procs.pop(name)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=timeout)
        self.exited[name] = code
        return code, time.monotonic() - started

    def reap(self) -> list[str]:
        """Names of processes that died on their own since the last look (e.g. a crashed worker)."""
        dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
        for name in dead:
            self.exited[name] = self.procs.pop(name).returncode
        return dead

    def stop(self, timeout: float = 40) -> None:
        """SIGTERM to all, then wait; SIGKILL whatever outlives `timeout`."""
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for name, proc in list(self.procs.items()):
            try:
                self.exited[name] = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                self.exited[name] = proc.wait(timeout=10)
        self.procs.clear()

    # -- logs ----------------------------------------------------------------------------------------------------
    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int | None = 8000) -> str:
        """Every log, each cut to its last `tail` characters (None: all of them, whole)."""
        text = "\n".join(f"=== {p.name}\n{p.read_text(errors='replace')[-tail if tail else 0:]}"
                         for p in sorted(self.logdir.glob("*.log")))
        return text[-tail * 2:] if tail else text

    def log_lines(self) -> list[str]:
        return [line for p in sorted(self.logdir.glob("*.log")) for line in p.read_text(errors="replace").splitlines()]

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.stop()
        if exc_type is None:
            shutil.rmtree(self.logdir, ignore_errors=True)
