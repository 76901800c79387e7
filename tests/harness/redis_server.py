"""A private redis-server: a free port, a temp dir, nothing on disk; started, stopped and killed at will."""
from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import redis

from . import binaries
from .ports import HOST, free_port
from .waiting import wait_until


class RedisServer:
    """`with RedisServer() as server:` one redis-server for a test session, a drill or a bench.

    It keeps nothing on disk (`--save "" --appendonly no`), so a stop loses every key, as the product's
    Redis may. A restart comes back on the same port, so the URLs handed out stay valid.
    """

    def __init__(self, port: int | None = None) -> None:
        self.binary = binaries.redis_server()
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="harness-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://{HOST}:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, db=db, socket_timeout=5, socket_connect_timeout=2)

    def up(self) -> bool:
        try:
            with self.client() as probe:
                return bool(probe.ping())
        except redis.RedisError:
            return False

    def start(self, timeout: float = 30) -> None:
        if self.running:
            return
        with open(self.dir / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no",
                 "--dir", str(self.dir), "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        wait_until(lambda: self._exited() or self.up(), timeout=timeout, what=f"redis-server on port {self.port}",
                   interval=0.02)
        if self._exited():
            raise RuntimeError(f"redis-server exited at start:\n{self.log()[-2000:]}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM: Redis closes every connection and exits (saving nothing)."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: gone at once, connections reset."""
        self._end(signal.SIGKILL, 30)

    def flush(self, *dbs: int) -> None:
        for db in dbs:
            with self.client(db) as c:
                c.flushdb()

    def log(self) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the server (killing it if it will not stop) and remove its directory."""
        try:
            if self.running:
                try:
                    self.stop(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def _end(self, sig: int, timeout: float) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
        self.process.wait(timeout=timeout)
        self.process = None

    def __enter__(self) -> RedisServer:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
