"""How long to wait for a user the engine created (or may have created) to become readable.

Graph answers 404 for a new user until it has replicated (seconds, sometimes a minute), and a create
whose answer was lost (5xx, dropped connection) may or may not have made the account. For
`create_confirm_s` after a create the engine looks before it acts again; the looks start every
REPLICATION_RETRY_S and grow with the time already waited (a quarter of it, at most
REPLICATION_MAX_RETRY_S), so a create that never happened costs about fifteen reads over two minutes
instead of sixty: each one is a call against the tenant's throttling budget that other users' work needs.
"""
from __future__ import annotations

from shared.pipeline.context import StepContext

REPLICATION_RETRY_S = 2.0
REPLICATION_MAX_RETRY_S = 30.0
# After a create Microsoft answered, the next step (licences) starts this long after the step began: a
# licence assigned at once mostly answers 404 and costs the call, a retry and a re-read. Replication is
# usually over in a few seconds (the emulator's lag in the benches is 2 s, and the create itself comes
# part of a second into the step); a slower tenant still gets the 404 path.
NEW_USER_SETTLE_S = 3.0


def since_create(ctx: StepContext) -> float:
    """Seconds since this request's last create was sent (inf: none is outstanding)."""
    return ctx.seconds_since(ctx.context.get("create_sent_at"))


def confirming(ctx: StepContext) -> bool:
    """Inside the window where a create of ours may exist but not be readable yet."""
    return since_create(ctx) < ctx.settings.create_confirm_s


def next_look(ctx: StepContext) -> float:
    """Seconds until the next look for the user, growing with the time already waited."""
    return max(REPLICATION_RETRY_S, min(REPLICATION_MAX_RETRY_S, since_create(ctx) / 4))
