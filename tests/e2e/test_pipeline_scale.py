"""Many users under replication lag, transient errors and throttling: all succeed, exactly once."""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 5, 40
# The emulator throttles each tenant at 15 calls/s; our shared limiter paces below that (etiquette), so
# concurrent workers never have calls in flight when a Retry-After is announced.
EMULATOR_RATE = 15
PACED = {"GRAPH_RATE_PER_TENANT": "14", "GRAPH_BURST_PER_TENANT": "10",
         "EXCHANGE_RATE_PER_TENANT": "14", "EXCHANGE_BURST_PER_TENANT": "10"}


def test_200_users_over_5_tenants_with_lag_errors_and_throttling(seeder, emulator, pipeline_env):
    tenants = [seeder.tenant(units=USERS_PER_TENANT + 5) for _ in range(TENANTS)]
    batches = [seeder.users(t, [f"u{i:03d}" for i in range(USERS_PER_TENANT)], aliases=1) for t in tenants]
    refs = [r for group in zip(*batches, strict=True) for r in group]  # tenants interleaved, as bulk calls mix
    total = len(refs)
    before = emulator.stats()
    with fresh_stack(pipeline_env, emulator, settings=PACED, replication_lag_s=1.5, error_rate=0.05,
                     graph_rate_per_tenant=EMULATOR_RATE, exchange_rate_per_tenant=EMULATOR_RATE,
                     mailbox_delay_s={"first": 3, "next": 1}) as stack:
        stack.worker("w1", concurrency=4)
        stack.beat()
        started = time.monotonic()
        publish(refs)
        states = seeder.wait([r.id for r in refs], timeout=240)
        elapsed = time.monotonic() - started
        emulator.set_faults(error_rate=0.0)
        assert states == {kinds.SUCCEEDED: total}, (states, stack.logs()[-6000:])
    stats = emulator.stats()
    ours = [stats["by_tenant"][t.tenant_id] for t in tenants]
    assert sum(s["users_created"] for s in ours) == total
    assert sum(s.get("duplicate_create_attempts", 0) for s in ours) == 0
    assert sum(s["licence_assignments"] for s in ours) == total  # each licence assigned once
    assert stats["retry_after_violations"] == before["retry_after_violations"] == 0
    assert sum(stats["injected_errors"].values()) > sum(before["injected_errors"].values())
    for t in tenants:
        users = emulator.tenant(t.tenant_id)["users"]
        assert len(users) == USERS_PER_TENANT
        assert all(len(u["assignedLicenses"]) == 1 for u in users)
        assert all(any(a.lower().startswith("smtp:u") and ".a0@" in a for a in u["proxyAddresses"]) for u in users)
    print(f"\n{total} users over {TENANTS} tenants in {elapsed:.1f}s "
          f"(throttled {sum(s.get('throttled', 0) for s in ours)}, injected errors {stats['injected_errors']})")


def test_throttled_calls_wait_out_retry_after_and_never_call_inside_it(seeder, emulator, pipeline_env):
    """Unpaced against a tight throttle: many 429s, each honoured (one slot, so nothing is in flight)."""
    tenant = seeder.tenant(units=10)
    refs = seeder.users(tenant, [f"t{i}" for i in range(6)], aliases=1)
    before = emulator.stats()["retry_after_violations"]
    with fresh_stack(pipeline_env, emulator, graph_rate_per_tenant=2, exchange_rate_per_tenant=2) as stack:
        stack.worker("w1", concurrency=1)
        stack.beat()
        publish(refs)
        states = seeder.wait([r.id for r in refs], timeout=120)
        assert states == {kinds.SUCCEEDED: 6}, (states, stack.logs()[-6000:])
    stats = emulator.stats()
    assert stats["by_tenant"][tenant.tenant_id]["throttled"] > 0
    assert stats["retry_after_violations"] == before
