"""Drill (g): a queue deeper than REDRIVE_AFTER_S must not multiply the work.

Without a watermark the reconciler cannot tell a lost message from one still waiting in the queue:
any `queued` or `running` request whose next look (`next_attempt_at`, set REDRIVE_AFTER_S after its
last step) has passed is published again, as its whole remaining chain. When messages wait in the queue longer than
that — many requests in flight, throttled tenants, too few workers; with the production default of
300 s, any backlog older than five minutes — every waiting request is re-published, the queue grows,
messages wait longer, and more requests are re-published. Each stale copy that finds its step done
then *continues* its chain (shared/pipeline/engine.py, `_why_not` returns "continue"), so copies walk
the rest of the chain instead of dying out.

Here: 300 users over three tenants on two `provisioner worker -P threads -c 4` with REDRIVE_AFTER_S=3
(a message waits about 5 s on this machine with 300 requests in flight). Nothing fails, nothing is
killed. Each request's steps must still be sent about once: at most 2 step messages per step
attempt (a clean run needs 1.0; drill (a), with REDRIVE_AFTER_S=20, logs e.g. 1807 messages for 1803
attempts). Measured before any fix: 2.2-3.4 messages per attempt; with kills on top (drill (a) at
REDRIVE_AFTER_S=5) the queue reached 3,200 messages for 300 requests and the run took 130 s instead of 40 s.
The drill runs with RUN_ON_STEPS=1 (the workers otherwise run a request's next steps in the same task,
which sends fewer messages than there are attempts). Now stale copies halt at their done step, and the
reconciler reads the oldest message waiting in each queue (its watermark, shared/pipeline/reconcile.py):
a request sent after it is still queued, not lost.
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
# Measured: 2.05-3.4x before any fix; 1.5x once stale copies halted at their done step; 1.00x with
# the queue watermark. The bound leaves room for the copies a watermark may still allow (a message
# sent just before the oldest waiting one was read), never for a re-published backlog.
MAX_MESSAGES_PER_ATTEMPT = 1.2


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
        f"the reconciler re-published requests whose message was only queued (shared/pipeline/record.py done() "
        f"and reconcile.due_requests), and stale copies that found their step done continued their chains "
        f"(shared/pipeline/engine.py _why_not -> 'continue')")
