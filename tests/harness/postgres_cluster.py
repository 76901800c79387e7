"""A private PostgreSQL cluster: initdb into a temp dir, a free port, fast unsafe settings, stop and start at will."""
from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from . import binaries
from .databases import create_database, drop_database
from .ports import HOST, free_port
from .waiting import wait_until

# Durability off: a drill's or bench's cluster is thrown away, and these make it several times faster.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
# PostgreSQL's documented shutdown signals to the postmaster.
_STOP_SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}


class PostgresCluster:
    """`with PostgresCluster() as pg:` a cluster of its own, trust auth for `postgres` on 127.0.0.1.

    initdb refuses to run as root, so as root the binaries run as the `postgres` OS user and the temp dir
    is theirs. `stop("fast")` cuts every connection and rolls back what was in flight; `stop("immediate")`
    is a crash (recovery at the next start). A restart comes back on the same port.
    """

    def __init__(self, port: int | None = None, *, durable: bool = False, settings: dict[str, str] | None = None,
                 ) -> None:
        self.bindir = binaries.postgres_bindir()
        self.port = port or free_port()
        # Durable (PostgreSQL's defaults, as production runs) for figures; fast for tests and drills.
        self.settings = {**({} if durable else FAST_SETTINGS), **(settings or {})}
        self._user = _run_as()
        self.dir = Path(tempfile.mkdtemp(prefix="harness-pg-"))
        if self._user is not None:
            os.chown(self.dir, self._user.pw_uid, self._user.pw_gid)
        self.data = self.dir / "data"
        self.process: subprocess.Popen[bytes] | None = None

    # -- addresses -----------------------------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@{HOST}:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def create_database(self, name: str) -> str:
        return create_database(self.admin_url, name)

    def drop_database(self, name: str) -> None:
        drop_database(self.admin_url, name)

    # -- life ----------------------------------------------------------------------------------------------------
    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True, timeout=120, cwd=self.dir, **self._as_user())

    def start(self, timeout: float = 60) -> None:
        if self.running:
            return
        self.init()
        options = [arg for key, value in {**self.settings, "listen_addresses": HOST,
                                          "unix_socket_directories": str(self.dir)}.items()
                   for arg in ("-c", f"{key}={value}")]
        with open(self.dir / "postgres.log", "ab") as log:
            self.process = subprocess.Popen([str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                                             *options], stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, cwd=self.dir, **self._as_user())
        wait_until(lambda: self._exited() or self.up(), timeout=timeout, what=f"PostgreSQL on port {self.port}",
                   interval=0.05)
        if self._exited():
            raise RuntimeError(f"PostgreSQL exited at start:\n{self.log()[-3000:]}")

    def up(self) -> bool:
        try:
            with psycopg.connect(host=HOST, port=self.port, user="postgres", dbname="postgres",
                                 connect_timeout=1) as conn:
                conn.execute("SELECT 1")
                return True
        except psycopg.Error:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """`fast` (connections cut, transactions rolled back, a clean checkpoint) or `immediate` (a crash)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(_STOP_SIGNALS[mode])
        self.process.wait(timeout=timeout)
        self.process = None

    def pids(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, ...), for CPU accounting."""
        if not self.running or self.process is None:
            return []
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [self.process.pid, *(int(p) for p in children.read_text().split())] if children.exists() else [
            self.process.pid]

    def log(self) -> str:
        path = self.dir / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop the cluster (harder if it will not stop) and remove its directory."""
        try:
            for mode in ("fast", "immediate"):
                try:
                    self.stop(mode, timeout=30)
                    break
                except subprocess.TimeoutExpired:
                    continue
            if self.process is not None:
                self.process.kill()
                self.process.wait(timeout=30)
                self.process = None
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None

    def _as_user(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": self._user.pw_dir, "USER": "postgres", "LOGNAME": "postgres"}}

    def __enter__(self) -> PostgresCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _run_as() -> pwd.struct_passwd | None:
    """The `postgres` OS user when running as root (initdb and postgres refuse root), else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise binaries.MissingBinary("running as root, and there is no `postgres` OS user to run PostgreSQL as") \
            from None
