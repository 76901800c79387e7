"""Drill (c): PostgreSQL restarted mid-run.

100 users (two tenants of 50) on two `provisioner worker -P threads -c 4` and one `provisioner beat`.
Once about a third of the requests succeeded, the drill's own cluster is stopped (a fast shutdown: every
connection is cut, transactions in flight roll back), left down a few seconds and started again.
Steps caught mid-transaction lose their work and their outcome; pooled connections are dead. The
workers must ride it out (pre-ping, retries) and the reconciler must re-drive whatever was in flight.
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


def test_a_postgres_restart_mid_run_loses_no_request(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    drill.fresh()
    with drill.stack() as stack:
        stack.worker("w0")
        stack.worker("w1")
        stack.beat()
        started = time.monotonic()
        publish(refs)
        at_restart = seeder.until(ids, lambda st: done_share(st, len(ids)) >= 0.3, what="a third done")
        try:
            drill.postgres.stop("fast")
            time.sleep(DOWN_S)  # the outage itself: the drill's length, not a wait for anything
        finally:
            drill.postgres.start()
            drill.restarted_postgres()  # this process's pooled connections died with the server
        assert drill.postgres.up()
        states = seeder.wait(ids, timeout=120)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (at_restart, states, stack.logs())
        died = stack.reap()
        assert not died, f"{died} exited when PostgreSQL went away:\n{stack.logs()}"
    facts = audit(seeder, tenants, refs)
    print(f"\n[drill c] {len(ids)} users, PostgreSQL down {DOWN_S:g}s at {at_restart}: all succeeded in "
          f"{elapsed:.0f}s; {facts['redriven']} request(s) re-ran an interrupted step")
    assert at_restart.get(kinds.SUCCEEDED, 0) < len(ids)
