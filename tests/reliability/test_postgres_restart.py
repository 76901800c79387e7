"""Drill (c): PostgreSQL restarted mid-run.

100 users (two tenants of 50) on two `provisioner worker -P threads -c 4` and one `provisioner beat`.
Once about a third of the requests succeeded, the cluster is stopped (`pg_ctlcluster ... stop`: every
connection is cut, transactions in flight roll back), left down a few seconds and started again.
Steps caught mid-transaction lose their work and their outcome; pooled connections are dead. The
workers must ride it out (pre-ping, retries) and the reconciler must re-drive whatever was in flight.
"""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.reliability.conftest import dispose_pooled_engines
from tests.reliability.stack import (
    Stack,
    audit,
    done_share,
    flush_redis,
    postgres_up,
    quiet_emulator,
    seed,
    start_postgres,
    stop_postgres,
    until,
)
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 2, 50
DOWN_S = 3.0


def test_a_postgres_restart_mid_run_loses_no_request(drill):
    world = drill.world
    tenants, refs = seed(world, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    flush_redis()
    quiet_emulator(drill.emulator)
    with Stack(drill.env) as stack:
        stack.worker("w0")
        stack.worker("w1")
        stack.beat()
        started = time.monotonic()
        publish(refs)
        at_restart = until(world, ids, lambda st: done_share(st, len(ids)) >= 0.3, what="a third done")
        try:
            stop_postgres()
            time.sleep(DOWN_S)
        finally:
            start_postgres()
            dispose_pooled_engines()  # this process's pooled connections died with the server
        assert postgres_up()
        states = world.wait(ids, timeout=120)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (at_restart, states, stack.logs())
        died = stack.reap()
        assert not died, f"{died} exited when PostgreSQL went away:\n{stack.logs()}"
    facts = audit(world, tenants, refs)
    print(f"\n[drill c] {len(ids)} users, PostgreSQL down {DOWN_S:g}s at {at_restart}: all succeeded in "
          f"{elapsed:.0f}s; {facts['redriven']} request(s) re-ran an interrupted step")
    assert at_restart.get(kinds.SUCCEEDED, 0) < len(ids)
