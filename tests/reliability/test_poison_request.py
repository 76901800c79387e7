"""Drill (f): a poison request, one whose step kills its worker every time, fails after 3 deliveries.

61 users on one tenant; one request (the poison) is named in DRILL_POISON_REQUESTS for the workers,
which start through tests/reliability/crashing_worker.py: `provisioner worker` whose ensure_user step
SIGKILLs its own process for that request (product code untouched). Each crash leaves the request
`running` with a lease; the reconciler re-drives it when the lease expires, and the claim counts a
delivery. The engine fails a request whose claim would be delivery MAX_DELIVERIES + 1 (= 4) with
`poison_message`: so the poison crashes a worker at most 3 times, ends `failed`, and the crashing stops.

The first test runs `-P prefork -c 4`, where a crash takes down only the pool process running the
poison (the parent starts a new one; `reject_on_worker_lost` requeues the message, whose claim then
finds the lease held), so the other 60 requests are untouched and must all succeed exactly once.

The second test runs the threads pool (`-P threads -c 4`, what compose, Kubernetes and `provisioner
dev` run): there a crash kills every step running in that worker, and each of them was counted a
delivery at its claim, exactly like the poison's. Their leases expire together with the poison's, the
reconciler re-drives them in the same pass, and a worker takes them together again. One worker, the
poison and three healthy users; the emulator answers every call after 1 s and the poison's step
crashes 0.3 s after it starts, so the healthy steps claimed with it are surely in flight when it
strikes. The healthy requests must still succeed: a step whose last delivery never finished is a
suspect and runs with its process to itself (shared/pipeline/isolation.py), so from the second delivery
on the poison crashes alone and each bystander gets a run of its own.
"""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.harness.waiting import wait_until
from tests.reliability.drill import audit, reconciles_sent, seed
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
USERS, MAX_DELIVERIES = 61, 3
CRASHING = "tests.reliability.crashing_worker"


def test_a_poison_request_fails_after_at_most_three_deliveries(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, 1, USERS)
    ids = [r.id for r in refs]
    poison = refs[USERS // 2].id
    drill.fresh()
    with drill.stack(MAX_DELIVERIES=str(MAX_DELIVERIES), DRILL_POISON_REQUESTS=poison,
                     DRILL_POISON_STEP="ensure_user") as stack:
        stack.worker("w0", pool="prefork", module=CRASHING)
        stack.beat()
        started = time.monotonic()
        publish(refs)
        states = seeder.wait(ids, timeout=120)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: USERS - 1, kinds.FAILED: 1}, (states, stack.logs())
        # Failed means done: the request is not re-driven, so nothing crashes any more. The reconciler
        # must have looked at least once after a lease could have expired (a lease and more of passes).
        passes = int(float(drill.env["LEASE_SECONDS"]) / float(drill.env["RECONCILE_INTERVAL_S"])) + 3
        seen = reconciles_sent(stack)
        wait_until(lambda: reconciles_sent(stack) >= seen + passes, timeout=120,
                   what=f"{passes} reconciler passes after the poison failed")
        assert not stack.reap(), stack.logs()
        crashes = stack.log("w0").count("exited with 'signal 9 (SIGKILL)'")
    req = next(r for r in seeder.requests([poison]))
    ensure = next(s for s in req.steps if s.name == "ensure_user")
    print(f"\n[drill f] poison request failed ({req.error_code}: {req.error_message}) after {ensure.attempts} "
          f"deliveries and {crashes} pool process crashes; the other {USERS - 1} succeeded in {elapsed:.0f}s")
    assert (req.state, req.error_code) == (kinds.FAILED, "poison_message"), (req.state, req.error_code)
    assert ensure.state == kinds.STEP_FAILED
    assert 1 <= ensure.attempts <= MAX_DELIVERIES, ensure.attempts
    assert 1 <= crashes <= MAX_DELIVERIES, f"the poison crashed a worker {crashes} times"
    facts = audit(seeder, tenants, refs, failed={poison})
    assert facts["redriven"] == 0, "a crash of the poison's pool process interrupted another request"


def test_a_poison_request_does_not_take_its_bystanders_with_it(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, 1, 4)
    ids = [r.id for r in refs]
    poison = refs[0].id
    drill.fresh(latency_ms={"mean": 1000, "jitter": 0})
    crashes: list[tuple[str, float]] = []
    with drill.stack(MAX_DELIVERIES=str(MAX_DELIVERIES), DRILL_POISON_REQUESTS=poison,
                     DRILL_POISON_STEP="ensure_user", DRILL_POISON_DELAY_S="0.3") as stack:
        names = iter(f"w{n}" for n in range(100))
        stack.worker(next(names), module=CRASHING)
        stack.beat()
        started = time.monotonic()

        def supervise(_states: dict[str, int]) -> None:  # restart a crashed worker at once, as Kubernetes would
            for dead in stack.reap():
                crashes.append((dead, round(time.monotonic() - started, 1)))
                stack.worker(next(names), module=CRASHING)

        publish(refs)
        states = seeder.wait(ids, timeout=90, on_tick=supervise)
    drill.fresh()
    rows = {r.id: r for r in seeder.requests(ids)}
    bystanders = {i: (r.state, r.error_code, [(s.name, s.attempts) for s in r.steps if s.attempts > 1])
                  for i, r in rows.items() if i != poison}
    print(f"\n[drill f2] poison {rows[poison].state} ({rows[poison].error_code}); worker crashes at {crashes}; "
          f"bystanders {list(bystanders.values())}")
    assert (rows[poison].state, rows[poison].error_code) == (kinds.FAILED, "poison_message")
    assert states.get(kinds.SUCCEEDED, 0) == len(ids) - 1, (
        f"healthy requests that merely shared a worker with the poison were failed with it: {bystanders}")
    audit(seeder, tenants, refs, failed={poison})
