"""The harness's process starter and waiting: signals to the whole group, logs kept only on failure."""
from __future__ import annotations

import signal

import pytest

from tests.harness.processes import Processes
from tests.harness.waiting import wait_until

SLEEPER = ["-c", "import time; print('started', flush=True); time.sleep(120)"]


def test_processes_are_killed_terminated_and_reaped_by_name() -> None:
    with Processes({}) as stack:
        stack.spawn("a", SLEEPER)
        stack.spawn("b", SLEEPER)
        stack.spawn("quits", ["-c", "raise SystemExit(3)"])
        wait_until(lambda: "started" in stack.log("a") and "started" in stack.log("b"), timeout=30,
                   what="both sleepers up")
        assert stack.kill("a") == -signal.SIGKILL
        code, _took = stack.terminate("b")
        assert code == -signal.SIGTERM
        wait_until(lambda: stack.reap(), timeout=30, what="the process that quits by itself")
        assert stack.exited == {"a": -signal.SIGKILL, "b": -signal.SIGTERM, "quits": 3}
        assert not stack.procs and "=== a.log\nstarted" in stack.logs(tail=None)
        logdir = stack.logdir
    assert not logdir.exists()  # a clean exit removes the logs


def test_logs_are_kept_when_the_block_failed_and_children_stopped() -> None:
    with pytest.raises(RuntimeError), Processes({}) as stack:
        proc = stack.spawn("sleeper", SLEEPER)
        raise RuntimeError("the test failed")
    assert proc.poll() is not None
    assert stack.logdir.exists()  # for the post-mortem
    for path in stack.logdir.iterdir():
        path.unlink()
    stack.logdir.rmdir()


def test_wait_until_returns_the_value_or_names_what_never_came() -> None:
    values = iter([0, None, "ready"])
    assert wait_until(lambda: next(values), timeout=5, what="a value", interval=0) == "ready"
    with pytest.raises(TimeoutError, match=r"the impossible: not within 0\.05 s"):
        wait_until(lambda: False, timeout=0.05, what="the impossible", interval=0.01)
