"""A worker killed with SIGKILL and Redis flushed mid-run: every request still succeeds, exactly once."""
from __future__ import annotations

import pytest

from shared.requests import kinds
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import flush_pipeline_redis, fresh_stack
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
USERS_PER_TENANT = 20


def test_sigkill_and_a_redis_flush_lose_no_request_and_double_nothing(seeder, emulator, pipeline_env):
    tenants = [seeder.tenant(units=USERS_PER_TENANT) for _ in range(2)]
    per_tenant = [seeder.users(t, [f"k{i:02d}" for i in range(USERS_PER_TENANT)], aliases=1) for t in tenants]
    refs = [r for pair in zip(*per_tenant, strict=True) for r in pair]
    ids = [r.id for r in refs]
    with fresh_stack(pipeline_env, emulator, replication_lag_s=1.0, latency_ms={"mean": 150, "jitter": 50},
                     mailbox_delay_s={"first": 4, "next": 2}) as stack:
        stack.worker("w1", concurrency=2)
        stack.worker("w2", concurrency=2)
        stack.beat()
        publish(refs)
        # Kill w1 while it is surely inside steps (creates and licences in flight).
        seeder.until(ids, lambda st: st.get(kinds.WAITING, 0) + st.get(kinds.SUCCEEDED, 0) >= 4, timeout=30,
                     what="the first users licensed")
        stack.kill("w1")
        killed_at = seeder.states(ids)
        # Flush once w2 moved the run on (a step finished since the kill), while work is surely left.
        seeder.until(ids, lambda st: st != killed_at, timeout=30, what="progress after the kill")
        flush_pipeline_redis(pipeline_env)  # every queued message, unacked one and limiter mark: gone
        flushed_at = seeder.states(ids)
        stack.worker("w3", concurrency=2)
        states = seeder.wait(ids, timeout=150)
        assert states == {kinds.SUCCEEDED: len(refs)}, (killed_at, flushed_at, states, stack.logs()[-6000:])
    assert killed_at.get(kinds.SUCCEEDED, 0) < len(refs), "the kill came too late to test anything"
    redriven = sum(1 for r in refs if any(s.attempts > 1 for s in seeder.get(r.id).steps if s.name != "wait_mailbox"))
    print(f"\nat the kill {killed_at}, at the flush {flushed_at}; {redriven} request(s) re-ran a step")
    # Whether the SIGKILL lands inside a step is timing; that the flush left unfinished work the
    # reconciler had to re-drive from Postgres is what this test needs, and it is asserted here.
    assert flushed_at.get(kinds.SUCCEEDED, 0) < len(refs), "the flush came too late to test anything"
    stats = emulator.stats()["by_tenant"]
    for t in tenants:
        ours = stats[t.tenant_id]
        assert ours["users_created"] == USERS_PER_TENANT
        assert ours.get("duplicate_create_attempts", 0) == 0
        assert ours["licence_assignments"] == USERS_PER_TENANT
        users = emulator.tenant(t.tenant_id)["users"]
        assert len(users) == USERS_PER_TENANT
        assert all(any(".a0@" in a for a in u["proxyAddresses"]) for u in users)
