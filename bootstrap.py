#!/usr/bin/env python3
"""Bootstrap: create .venv from the lock file, then run the embedded default or the tests.

    python3 bootstrap.py dev     # emulator + API + worker + beat + Flower on SQLite
    python3 bootstrap.py test    # ruff, mypy, lint-imports, pytest

Only the standard library is used here, so a fresh machine with Python 3.11+ is enough.
The virtual environment is rebuilt when requirements/lock.txt changes.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PROVISIONER_VENV", ROOT / ".venv"))
LOCK = ROOT / "requirements" / "lock.txt"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def _stamp() -> str:
    h = hashlib.sha256(LOCK.read_bytes())
    h.update((ROOT / "pyproject.toml").read_bytes())
    return h.hexdigest()


def ensure_venv() -> None:
    marker = VENV / ".lock-sha256"
    if marker.exists() and marker.read_text() == _stamp():
        return
    if sys.version_info < (3, 11):  # noqa: UP036 - bootstrap may run under an older system Python
        sys.exit("m365-provisioner needs Python 3.11 or newer")
    print(f"bootstrap: building {VENV} from {LOCK.relative_to(ROOT)}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    py = str(BIN / "python")
    pip = [py, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--require-hashes", "--no-deps", "-r", str(LOCK)], check=True)
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True)
    marker.write_text(_stamp())


def run_tests(extra: list[str]) -> int:
    steps = [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "mypy"), "shared", "worker", "api", "emulator", "commands"],
        [str(BIN / "lint-imports")],  # the layering contracts in pyproject.toml
        [str(BIN / "python"), "-m", "pytest", *(extra or ["-q"])],
    ]
    for cmd in steps:
        print("bootstrap: " + " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)), flush=True)
        rc = subprocess.run(cmd, cwd=ROOT).returncode
        if rc:
            return rc
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"dev", "test", "venv", "run"}:
        print(__doc__)
        return 2
    ensure_venv()
    cmd, rest = argv[0], argv[1:]
    if cmd == "venv":
        return 0
    if cmd == "test":
        return run_tests(rest)
    if cmd == "run":  # any project command inside the venv: bootstrap.py run provisioner migrate
        return subprocess.run([str(BIN / rest[0]), *rest[1:]], cwd=ROOT).returncode
    os.execv(str(BIN / "provisioner"), [str(BIN / "provisioner"), "dev", *rest])
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
