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
import redis

from shared.requests import kinds
from tests.reliability.stack import (
    BROKER_DB,
    REDIS_HOST,
    REDIS_PORT,
    Stack,
    audit,
    done_share,
    flush_redis,
    quiet_emulator,
    seed,
    until,
)
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 2, 50


def test_two_beats_at_once_double_nothing(drill):
    world = drill.world
    tenants, refs = seed(world, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    flush_redis()
    quiet_emulator(drill.emulator)
    with Stack(drill.env) as stack:
        stack.worker("w0")
        stack.worker("w1")
        stack.beat("beat0")
        stack.beat("beat1")
        started = time.monotonic()
        publish(refs)
        at_flush = until(world, ids, lambda st: done_share(st, len(ids)) >= 0.3, what="a third done")
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=BROKER_DB).flushdb()  # every message gone at once
        states = world.wait(ids, timeout=120)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (at_flush, states, stack.logs())
        sent = {name: stack.log(name).count("Sending due task reconcile-requests") for name in ("beat0", "beat1")}
        assert not stack.reap()
    facts = audit(world, tenants, refs)
    print(f"\n[drill e] {len(ids)} users, two beats (reconciles sent {sent}), broker flushed at {at_flush}: "
          f"all succeeded in {elapsed:.0f}s; {facts['redriven']} request(s) re-ran an interrupted step")
    assert all(n >= 3 for n in sent.values()), f"both beats must have been reconciling: {sent}"
