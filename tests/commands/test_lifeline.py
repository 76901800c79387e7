"""The lifeline: once the supervisor lets go (or dies), a child ends its whole process group."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from commands import lifeline

ROOT = Path(__file__).resolve().parents[2]
# A child that watches the lifeline and starts a grandchild that ignores SIGTERM (only SIGKILL ends it).
CHILD = """
import subprocess, sys, threading
from commands import lifeline
assert lifeline.watch()
grandchild = subprocess.Popen([sys.executable, "-c",
    "import signal, threading; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
    "threading.Event().wait()"], stdout=subprocess.PIPE)
print(grandchild.pid, grandchild.stdout.readline().decode().strip(), flush=True)
threading.Event().wait()
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_watch_without_a_lifeline_does_nothing() -> None:
    env = {"OTHER": "1"}
    assert lifeline.watch(env) is False
    assert env == {"OTHER": "1"}


def test_a_child_takes_its_group_with_it_when_the_supervisor_lets_go() -> None:
    line = lifeline.Lifeline()
    child = subprocess.Popen([sys.executable, "-c", CHILD], env=line.child_env({**os.environ, "PYTHONPATH": str(ROOT)}),
                             pass_fds=line.pass_fds, stdout=subprocess.PIPE, start_new_session=True)
    grandchild = 0
    try:
        assert child.stdout is not None
        pid, ready = child.stdout.readline().decode().split()
        grandchild = int(pid)
        assert ready == "ready" and _running(grandchild)
        line.close()  # what the supervisor's exit, SIGKILL included, does to the pipe
        assert child.wait(timeout=lifeline.GRACE_S + 30) == -signal.SIGTERM  # its own orderly end
        deadline = time.monotonic() + lifeline.GRACE_S + 30
        while _running(grandchild) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(grandchild), "the grandchild ignoring SIGTERM outlived the lifeline's SIGKILL"
    finally:  # a failure must not leave either behind
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
        if grandchild and _running(grandchild):
            os.kill(grandchild, signal.SIGKILL)
