"""Drill (g): a queue deeper than REDRIVE_AFTER_S must not multiply the work.

Postgres cannot tell a lost message from one still waiting behind a backlog (the engine no longer reads
the broker's storage): a `queued` or `running` request nobody claimed by its next look
(`next_attempt_at`, REDRIVE_AFTER_S after its last step) is published again. What keeps that from
multiplying the work: each publish carries a new dispatch generation, so the older copy stops at its
claim without acting and never walks its chain; and each re-drive without a claim in between waits twice
as long as the one before (shared/pipeline/reconcile.py), so a message waiting W seconds is copied at most
about log2(W / REDRIVE_AFTER_S + 1) times, not once per reconciler pass.

Here: 300 users over three tenants on two `provisioner worker -P threads -c 4` with REDRIVE_AFTER_S=3,
far below the time a message waits with 300 requests in flight (5-20 s on this machine, by its load).
Nothing fails, nothing is killed. Every user succeeds with exactly one create and one licence
(audit()), and the step messages per step attempt stay within what the backoff allows. Measured on
2026-12-03: 1.64x and 3.04x (the second under heavy load); the queue watermark that read kombu's Redis
lists gave 1.00x, and copies that walked their chains 2.2-3.4x with the queue growing without bound.
With the production default of 300 s the backlog needed for a single copy is five minutes deep.
"""
from __future__ import annotations

import time

import pytest

from shared.requests import kinds
from tests.reliability.drill import audit, seed, step_messages
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TENANTS, USERS_PER_TENANT = 3, 100
REDRIVE_AFTER_S = 3
# A message that waits 45 s (REDRIVE_AFTER_S x 15) is copied at most 4 times under the doubling backoff:
# 5 messages for that attempt. The run's average stays well below unless the queue grows without bound.
MAX_MESSAGES_PER_ATTEMPT = 4.0


def test_a_queue_deeper_than_the_redrive_clock_sends_each_step_about_once(drill):
    seeder = drill.seeder
    tenants, refs = seed(seeder, TENANTS, USERS_PER_TENANT)
    ids = [r.id for r in refs]
    drill.fresh()
    # One message per step (each step is its own task): messages per step attempt measure the re-drives.
    with drill.stack(REDRIVE_AFTER_S=str(REDRIVE_AFTER_S)) as stack:
        stack.worker("w0")
        stack.worker("w1")
        stack.beat()
        started = time.monotonic()
        publish(refs)
        states = seeder.wait(ids, timeout=180)
        elapsed = time.monotonic() - started
        assert states == {kinds.SUCCEEDED: len(ids)}, (states, stack.logs())
        messages = step_messages(stack)
    facts = audit(seeder, tenants, refs)
    ratio = messages / facts["step_attempts"]
    print(f"\n[drill g] {len(ids)} users with REDRIVE_AFTER_S={REDRIVE_AFTER_S}: all succeeded in {elapsed:.0f}s; "
          f"{messages} step messages for {facts['step_attempts']} step attempts ({ratio:.2f} per attempt)")
    assert messages >= facts["step_attempts"], "the workers' log no longer shows `steps.<step>[...] received` lines"
    assert ratio <= MAX_MESSAGES_PER_ATTEMPT, (
        f"{messages} step messages for {facts['step_attempts']} step attempts ({ratio:.2f}x) in {elapsed:.0f}s: "
        f"re-drives no longer back off (shared/pipeline/reconcile.py due_requests), or superseded copies walk "
        f"their chains instead of stopping at their claim (shared/pipeline/claim.py why_not -> 'superseded')")
