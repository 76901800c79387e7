"""What the failure drills share beyond the harness: their world (two licences a user) and the final audit.

Each drill module runs on services of its own (tests/reliability/conftest.py): a private PostgreSQL
cluster and a private redis-server it may stop, crash and restart; the machine's are never touched.
Workers run on the threads pool by default (`provisioner worker -P threads -c 4`), as production runs them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from tests.harness.processes import Processes
from tests.harness.seeding import Seeder, Tenant

BROKER_DB, LIMITER_DB = 0, 1
# A mailbox licence and one without a mailbox: every user costs two seats, so licence_assignments
# must equal users x 2 (a licence assigned twice would show).
SKUS = ("O365_BUSINESS_ESSENTIALS", "FLOW_FREE")
# Mailboxes appear 1 s after licensing (0.5 s after the tenant's first): every request takes the durable
# timer path (waiting -> reconciler -> queued) at least once.
MAILBOX_DELAY = {"first": 1, "next": 0.5}


def seed(seeder: Seeder, tenants: int, per_tenant: int) -> tuple[list[Tenant], list[RequestRef]]:
    """`tenants` tenants of `per_tenant` users with both licences and one alias; the requests interleaved."""
    return seeder.seed(tenants, per_tenant, skus=SKUS, aliases=1)


def step_messages(stack: Processes) -> int:
    """Step task messages (`steps.<step>`) the drill's workers took from the broker, retries included
    (Celery logs each one `received`)."""
    return sum(1 for line in stack.log_lines() if "Task steps." in line and line.endswith("] received"))


def reconciles_sent(stack: Processes, beat: str = "beat") -> int:
    """How often `beat` has sent the reconciler so far (celery beat logs each `Sending due task`)."""
    return stack.log(beat).count("Sending due task reconcile-requests")


def audit(seeder: Seeder, tenants: Sequence[Tenant], refs: Sequence[RequestRef], *,
          failed: Iterable[str] = ()) -> dict[str, Any]:
    """Every request final and accounted for; Microsoft changed exactly once per user.

    `failed` names requests expected to fail (the poison request); all others must have succeeded.
    Returns the facts the drill prints (`redriven`, `max_step_attempts`: over the requests expected to
    succeed; `step_attempts`: over all).
    """
    failed = set(failed)
    rows = {r.id: r for r in seeder.requests(r.id for r in refs)}
    assert len(rows) == len(refs), f"lost requests: {len(refs) - len(rows)} of {len(refs)} rows missing"
    not_final = {i: (r.state, r.current_step, r.error_code) for i, r in rows.items()
                 if r.state not in kinds.FINAL_STATES}
    assert not not_final, f"{len(not_final)} request(s) not final: {list(not_final.items())[:10]}"
    wrong = {i: (r.state, r.current_step, r.error_code, r.error_message) for i, r in rows.items()
             if (r.state != kinds.FAILED if i in failed else r.state != kinds.SUCCEEDED)}
    assert not wrong, f"{len(wrong)} request(s) ended wrongly: {list(wrong.items())[:10]}"
    for r in rows.values():
        if r.id not in failed:
            assert all(s.state in (kinds.STEP_SUCCEEDED, kinds.STEP_SKIPPED) for s in r.steps), r.id

    stats = seeder.emulator.stats()
    for t in tenants:
        expected_users = sum(1 for r in rows.values() if r.customer_id == t.customer_id and r.id not in failed)
        mine = stats["by_tenant"].get(t.tenant_id, {})
        facts = {k: mine.get(k, 0) for k in ("users_created", "duplicate_create_attempts", "licence_assignments")}
        assert facts == {"users_created": expected_users, "duplicate_create_attempts": 0,
                         "licence_assignments": expected_users * len(t.skus)}, (t.tenant_id, facts)
        users = seeder.emulator.tenant(t.tenant_id)["users"]
        assert len(users) == expected_users
        for u in users:
            assert len(u["assignedLicenses"]) == len(t.skus), u["userPrincipalName"]
            local = u["userPrincipalName"].split("@")[0]
            mine_alias = [a for a in u["proxyAddresses"] if a.lower() == f"smtp:{local}.a0@{t.domain}"]
            assert len(mine_alias) == 1, (u["userPrincipalName"], u["proxyAddresses"])
    rerun = [max((s.attempts for s in r.steps if s.name not in ("wait_mailbox", "apply_aliases")), default=0)
             for r in rows.values() if r.id not in failed]
    return {"requests": len(refs), "redriven": sum(1 for n in rerun if n > 1),
            "max_step_attempts": max(rerun, default=0),
            "step_attempts": sum(s.attempts for r in rows.values() for s in r.steps)}
