"""Finding the server binaries the harness runs (redis-server, the PostgreSQL server tools)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path


class MissingBinary(RuntimeError):
    """A server binary the harness needs is not installed (tests skip locally, fail under CI=true)."""


def redis_server() -> str:
    found = os.environ.get("REDIS_SERVER") or shutil.which("redis-server")
    if not found:
        raise MissingBinary("redis-server is not installed (set REDIS_SERVER to its path)")
    return found


def postgres_bindir() -> Path:
    """PG_BINDIR, else the newest /usr/lib/postgresql/<version>/bin, else where pg_config or PATH says."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)], reverse=True)
    candidates += versions
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb") or "").resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").exists() and (bindir / "postgres").exists():
            return bindir
    raise MissingBinary("the PostgreSQL server binaries (initdb, postgres) are not installed (set PG_BINDIR)")
