"""Children of `provisioner dev` end with it: a pipe only the supervisor holds the write end of."""

# Why a pipe and not (only) PR_SET_PDEATHSIG: the kernel closes a dead process's descriptors however it
# died (SIGKILL included), so the read end sees EOF at once and the child can take its whole process
# group (its own children: uvicorn or Celery pool processes) down with it. A death signal would end
# the child alone, is Linux-only, and fires when the forking *thread* ends rather than the process.
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, MutableMapping

ENV = "PROVISIONER_LIFELINE_FD"
# Between the orderly stop a child starts on SIGTERM (the emulator saves its world, the worker hands
# back its messages) and SIGKILL for whatever is still there.
GRACE_S = 10.0


class Lifeline:
    """The supervisor's side: `child_env()` and `pass_fds` for every child it starts."""

    def __init__(self) -> None:
        # os.pipe() descriptors are not inheritable: no child ever holds the write end, so only
        # the supervisor's exit (or close()) ends the pipe.
        self.read_fd, self._write_fd = os.pipe()

    @property
    def pass_fds(self) -> tuple[int]:
        return (self.read_fd,)

    def child_env(self, env: Mapping[str, str]) -> dict[str, str]:
        return {**env, ENV: str(self.read_fd)}

    def close(self) -> None:
        """Let go: every child still watching stops itself now."""
        for fd in (self._write_fd, self.read_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def watch(environ: MutableMapping[str, str] = os.environ) -> bool:
    """In a process started by the supervisor: stop this process group once the supervisor is gone.

    Returns whether there was a lifeline to watch. Called first thing by `provisioner` commands.
    """
    value = environ.pop(ENV, None)
    if value is None:
        return False
    fd = int(value)
    os.set_inheritable(fd, False)  # this process's own children are reached through the process group
    threading.Thread(target=_wait_for_eof, args=(fd,), name="lifeline", daemon=True).start()
    return True


def _wait_for_eof(fd: int) -> None:
    try:
        while os.read(fd, 64):  # the supervisor never writes: only EOF (it is gone) ends this
            pass
    except OSError:  # the descriptor was closed under us: nothing left to watch
        return
    stop_group(os.getpgid(0))


# The sweeper: a fresh interpreter in the dying group that ignores SIGTERM, so the escalation to SIGKILL
# still happens when the child it came from has already ended on SIGTERM without its own children.
SWEEPER = ("import os, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); g = int(sys.argv[1]); "
           "os.killpg(g, signal.SIGTERM); time.sleep(float(sys.argv[2])); os.killpg(g, signal.SIGKILL)")


def stop_group(pgid: int, grace_s: float = GRACE_S) -> None:
    """SIGTERM the process group, SIGKILL it `grace_s` later (this process is in it: it ends too)."""
    try:
        subprocess.Popen([sys.executable, "-c", SWEEPER, str(pgid), str(grace_s)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:  # no sweeper to be had: end the group at once rather than leave it
        os.killpg(pgid, signal.SIGKILL)
