"""Drill (e): two `provisioner beat` processes at once; their reconcilers race, nothing happens twice.

100 users (two tenants of 50) on two `provisioner worker -P threads -c 4` with two beats, each sending
the reconcile task every second. Every request goes through a durable timer (mailbox probes), so both
reconcilers keep re-enqueueing the same due rows; mid-run the broker db is also flushed, so both
must re-drive every unfinished request at the same moment. FOR UPDATE SKIP LOCKED, the pushed-back
next look and the step lease must keep every effect single.
"""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.harness.seeding import done_share
from tests.reliability.drill import BROKER_DB, audit, reconciles_sent, seed
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 2, 50


def test_two_beats_at_once_double_nothing(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    drill.fresh()
    with drill.stack() as stack:
        stack.worker("w0")
        stack.worker("w1")
        stack.beat("beat0")
        stack.beat("beat1")
        started = time.monotonic()
        publish(refs)
        at_flush = seeder.until(ids, lambda st: done_share(st, len(ids)) >= 0.3, what="a third done")
        drill.redis.flush(BROKER_DB)  # every message gone at once
        states = seeder.wait(ids, timeout=120)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (at_flush, states, stack.logs())
        sent = {name: reconciles_sent(stack, name) for name in ("beat0", "beat1")}
        assert not stack.reap()
    facts = audit(seeder, tenants, refs)
    print(f"\n[drill e] {len(ids)} users, two beats (reconciles sent {sent}), broker flushed at {at_flush}: "
          f"all succeeded in {elapsed:.0f}s; {facts['redriven']} request(s) re-ran an interrupted step")
    assert all(n >= 3 for n in sent.values()), f"both beats must have been reconciling: {sent}"
