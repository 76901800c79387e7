"""Drill (a): kill -9 a worker four times during a run of 300 users, each time its replacement is ready.

300 user.provision requests over three tenants (100 each; two licences and one alias per user;
mailboxes that take 1 s) run on two `provisioner worker -P threads -c 4` processes and one
`provisioner beat`, against the drill's own Redis broker and PostgreSQL cluster. The older worker gets
SIGKILL — no warm shutdown, no ack, no restore: its in-flight steps and the messages it had reserved are
simply gone — and a new worker starts; once that one is consuming, the next kill comes. The reconciler
must re-drive what the dead workers held once their leases (10 s) expire.

REDRIVE_AFTER_S is 20 here: with 300 requests in flight a message waits about 5 s in the queue on this
2-core machine, and the re-drive clock must stay above that (test_redrive_backlog.py shows why).

Ends with every request succeeded, none lost, and Microsoft changed exactly once per user.
"""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.reliability.drill import audit, seed, step_messages
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 3, 100
KILLS = 4


def test_kill_9_workers_repeatedly_during_300_users(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    drill.fresh()
    at_kill: list[dict[str, int]] = []
    with drill.stack(REDRIVE_AFTER_S="20") as stack:
        stack.worker("w0")
        stack.worker("w1")
        stack.beat()
        started = time.monotonic()
        publish(refs)
        # Real work in flight (steps claimed, users being created) before the first kill.
        seeder.until(ids, lambda st: st.get(kinds.QUEUED, 0) <= len(ids) - 20, what="the first claims")
        order = ["w0", "w1"]
        for n in range(KILLS):
            victim = order.pop(0)
            at_kill.append(seeder.states(ids))
            stack.kill(victim)
            fresh = f"w{n + 2}"
            stack.worker(fresh)
            order.append(fresh)
            stack.wait_ready(fresh)
        states = seeder.wait(ids, timeout=150)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (states, stack.logs())
        messages = step_messages(stack)
    facts = audit(seeder, tenants, refs)
    print(f"\n[drill a] {len(ids)} users, {KILLS} x kill -9: all succeeded in {elapsed:.0f}s; "
          f"states at each kill {at_kill}; {facts['redriven']} request(s) re-ran an interrupted step "
          f"(at most {facts['max_step_attempts']} attempts of one step); "
          f"{messages} step messages for {facts['step_attempts']} step attempts")
    assert all(st.get(kinds.SUCCEEDED, 0) < len(ids) for st in at_kill), "a kill came after the run ended"
    assert facts["redriven"] >= 1, "no kill interrupted a step: the drill tested nothing"
