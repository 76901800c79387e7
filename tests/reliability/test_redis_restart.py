"""Drill (b): Redis restarted mid-run; it keeps nothing on disk, so every queued message is lost.

100 users (two tenants of 50) on two `provisioner worker -P threads -c 4` and one `provisioner beat`.
Once about a third of the requests succeeded, the drill's own Redis is stopped and started again
empty (it keeps nothing on disk): every queued, scheduled and unacked message, the kombu bindings and
the shared limiter's keys are gone. The beat's reconciler must re-drive every unfinished request from PostgreSQL.

The workers are supervised as compose (`restart: unless-stopped`) and Kubernetes do: one that exits is
started again. Most reconnect by themselves; now and then one dies instead — a race in kombu 5.7's
Redis transport on the threads pool (`Unrecoverable error: AttributeError("'NoneType' object has no
attribute 'hostname'")` while it restores unacked messages on a closed connection). The drill prints
such exits; the beat must survive.
"""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.harness.seeding import done_share
from tests.reliability.drill import audit, seed
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 2, 50
DOWN_S = 3.0


def test_a_redis_restart_mid_run_loses_no_request(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    drill.fresh()
    exits: list[tuple[str, int]] = []
    with drill.stack() as stack:
        names = iter(f"w{n}" for n in range(100))
        stack.worker(next(names))
        stack.worker(next(names))
        stack.beat()

        def supervise(_states: dict[str, int]) -> None:
            for dead in stack.reap():
                assert dead != "beat", f"the beat exited when Redis went away:\n{stack.log('beat')[-5000:]}"
                exits.append((dead, stack.exited[dead]))
                stack.worker(next(names))

        started = time.monotonic()
        publish(refs)
        at_restart = seeder.until(ids, lambda st: done_share(st, len(ids)) >= 0.3, what="a third done")
        try:
            drill.redis.stop()
            time.sleep(DOWN_S)  # the outage itself: the drill's length, not a wait for anything
        finally:
            drill.redis.start()
        assert drill.redis.up()
        states = seeder.wait(ids, timeout=120, on_tick=supervise)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (at_restart, states, stack.logs())
        supervise({})
    facts = audit(seeder, tenants, refs)
    print(f"\n[drill b] {len(ids)} users, Redis down {DOWN_S:g}s and back empty at {at_restart}: all succeeded "
          f"in {elapsed:.0f}s; {facts['redriven']} request(s) re-ran an interrupted step; "
          f"workers that exited and were restarted (name, exit code): {exits or 'none'}")
    assert at_restart.get(kinds.SUCCEEDED, 0) < len(ids)
