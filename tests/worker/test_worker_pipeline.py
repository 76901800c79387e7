"""A real celery worker and beat against Redis, Postgres and the emulator: chains run, waits don't hold slots."""
from __future__ import annotations

import pytest

from shared.requests import kinds
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def test_a_worker_provisions_users_through_the_whole_chain(seeder, emulator, pipeline_env):
    tenant = seeder.tenant(units=5)
    refs = seeder.users(tenant, ["ada", "bob", "cy"], aliases=2)
    with fresh_stack(pipeline_env, emulator, mailbox_delay_s={"first": 2, "next": 1}) as stack:
        stack.worker(concurrency=2)
        stack.beat()
        publish(refs)
        states = seeder.wait([r.id for r in refs], timeout=60)
        assert states == {kinds.SUCCEEDED: 3}, stack.logs()[-5000:]
    world = emulator.tenant(tenant.tenant_id)
    made = {u["userPrincipalName"]: u for u in world["users"]}
    assert set(made) == {f"{n}@{tenant.domain}" for n in ("ada", "bob", "cy")}
    for name, user in made.items():
        local = name.split("@")[0]
        assert {f"smtp:{local}.a0@{tenant.domain}", f"smtp:{local}.a1@{tenant.domain}"} <= {
            a.lower() for a in user["proxyAddresses"]}
        assert len(user["assignedLicenses"]) == 1
    req = seeder.get(refs[0].id)
    # buy_seats is skipped: an indirect reseller buys nothing through the engine.
    assert [s.state for s in req.steps] == ["succeeded", "skipped"] + ["succeeded"] * 5
    assert all(s.attempts >= 1 and s.finished_at for s in req.steps)


def test_waiting_for_mailboxes_does_not_hold_worker_slots(seeder, emulator, pipeline_env):
    """24 users whose mailboxes take 6 s with 2 slots: many wait at once, more than there are slots."""
    slots = 2
    tenant = seeder.tenant(units=30)
    refs = seeder.users(tenant, [f"u{i}" for i in range(24)], aliases=1)
    pending_at_once: list[int] = []

    def count_pending(_states: dict[str, int]) -> None:
        users = emulator.tenant(tenant.tenant_id)["users"]
        pending_at_once.append(sum(1 for u in users if u["mailbox"] == "provisioning"))

    with fresh_stack(pipeline_env, emulator, mailbox_delay_s={"first": 6, "next": 6}) as stack:
        stack.worker(concurrency=slots)
        stack.beat()
        publish(refs)
        states = seeder.wait([r.id for r in refs], timeout=120, on_tick=count_pending)
        assert states == {kinds.SUCCEEDED: 24}, stack.logs()[-5000:]
    # A wait that held its slot would keep at most `slots` licensed users waiting for their mailbox at a
    # time; durable timers let the slots license the next users while the first ones wait.
    assert max(pending_at_once) > slots, (
        f"never more than {max(pending_at_once)} mailboxes pending at once: waits held worker slots")
