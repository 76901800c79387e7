"""Drill (d): SIGTERM rolling restarts of the workers, replacement started before and after.

200 users (two tenants of 100; mailboxes take 2 s, so the run outlasts the restarts, which are slow
to start on two busy cores) on two `provisioner worker -P threads -c 4` and one `provisioner beat`.
Mid-run, as a deployment would: start w2 then SIGTERM w0 (replacement before); SIGTERM w1 then start
w3 (replacement after); start w4 then SIGTERM w2. SIGTERM is Celery's warm shutdown (soft shutdown
timeout 30 s): running steps finish, reserved messages go back to the queue.

Beyond the common checks: each worker exits 0 well inside the soft shutdown timeout, and a graceful
stop interrupts nothing, so no step other than the mailbox probes ran more than once.
"""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.reliability.drill import audit, seed
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 2, 100
SOFT_SHUTDOWN_S = 30.0  # worker_soft_shutdown_timeout in worker/app.py


def test_sigterm_rolling_restarts_lose_and_repeat_nothing(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    drill.fresh(mailbox_delay_s={"first": 2, "next": 1})
    stops: list[tuple[str, int, float, dict[str, int]]] = []
    with drill.stack() as stack:
        stack.worker("w0")
        stack.worker("w1")
        stack.beat()
        started = time.monotonic()
        publish(refs)

        def stop(name: str) -> None:
            states = seeder.states(ids)
            code, took = stack.terminate(name)
            stops.append((name, code, took, states))

        seeder.until(ids, lambda st: st.get(kinds.QUEUED, 0) <= len(ids) - 20, what="the first claims")
        stack.worker("w2")  # replacement first
        stack.wait_ready("w2")
        stop("w0")
        stop("w1")  # replacement after
        stack.worker("w3")
        stack.worker("w4")  # and the next replacement before w2 goes
        stack.wait_ready("w3")
        stack.wait_ready("w4")
        stop("w2")
        states = seeder.wait(ids, timeout=120)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (stops, states, stack.logs())
    facts = audit(seeder, tenants, refs)
    print(f"\n[drill d] {len(ids)} users, rolling SIGTERM restarts "
          f"{[(n, c, round(t, 1), st) for n, c, t, st in stops]} (name, exit code, seconds, states before): "
          f"all succeeded in {elapsed:.0f}s; at most {facts['max_step_attempts']} attempts of one step")
    assert all(st.get(kinds.SUCCEEDED, 0) < len(ids) for *_, st in stops[:2]), "the restarts came after the run"
    for name, code, took, _ in stops:
        assert code == 0, f"{name} exited {code} on SIGTERM"
        assert took < SOFT_SHUTDOWN_S, f"{name} took {took:.1f}s to stop: a step outlived the soft shutdown"
    assert facts["redriven"] == 0, (
        f"{facts['redriven']} request(s) ran a step twice although every stop was graceful")
