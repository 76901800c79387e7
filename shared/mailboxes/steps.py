"""wait_mailbox and apply_aliases: probe on a growing interval as a durable timer, then add missing aliases."""
from __future__ import annotations

from typing import Any

from shared.microsoft.errors import MailboxNotReady
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, StepFailed, Wait
from shared.tenants import access
from shared.users.subject import linked_id, user_of


def next_probe(ctx: StepContext, what: str) -> Wait:
    """first * factor^n, capped; past the deadline (counted from licensing) the request fails."""
    s = ctx.settings
    since = ctx.context.get("licensed_at") or ctx.context.get("mailbox_wait_since") or ctx.now.isoformat()
    if ctx.seconds_since(since) >= s.mailbox_deadline_s:
        raise StepFailed("mailbox_timeout", f"the mailbox was not ready {s.mailbox_deadline_s:.0f}s after licensing")
    probes = int(ctx.context.get("mailbox_probes", 0))
    # The first wait was first_delay; each probe that finds nothing waits factor times longer (capped).
    delay = min(s.mailbox_first_delay_s * s.mailbox_backoff_factor ** (probes + 1), s.mailbox_max_delay_s)
    ctx.remember(mailbox_probes=probes + 1, mailbox_wait_since=since)
    return Wait(ctx.after(delay), what)


def wait_mailbox(ctx: StepContext) -> Done | Wait:
    if not ctx.context.get("mailbox_expected"):
        return Done(skipped=True, note="no licence with an Exchange Online plan: no mailbox to wait for")
    # The Entra user this request linked or created (ensure_user remembered it), else the user's own.
    entra_id = ctx.context.get("entra_id") or linked_id(user_of(ctx))
    if access.graph(ctx).mailbox_ready(entra_id):
        return Done(note=f"mailbox ready after {int(ctx.context.get('mailbox_probes', 0)) + 1} probe(s)")
    return next_probe(ctx, "the mailbox is not ready yet")


def _addresses(mailbox: dict[str, Any]) -> set[str]:
    raw = mailbox.get("EmailAddresses") or mailbox.get("emailAddresses") or mailbox.get("proxyAddresses") or []
    return {str(a).split(":", 1)[-1].lower() for a in raw}


def apply_aliases(ctx: StepContext) -> Done | Wait:
    user = user_of(ctx)
    aliases = [a.lower() for a in user.aliases or []]
    if not aliases:
        return Done(skipped=True, note="no aliases to add")
    if not ctx.context.get("mailbox_expected"):
        raise StepFailed("no_mailbox", "aliases need a mailbox, and the user plan has no Exchange Online licence")
    upn = user.entra_upn or user.upn
    exchange = access.exchange(ctx)
    try:
        present = _addresses(exchange.get_mailbox(upn))  # one read, whatever the number of aliases
        missing = [a for a in aliases if a not in present]
        if missing:
            exchange.add_mailbox_addresses(upn, missing)
    except MailboxNotReady as exc:
        # Graph saw the mailbox before Exchange did: back to waiting, not failed.
        ctx.note_error(exc)
        return next_probe(ctx, "Exchange refuses mailbox work until the mailbox exists")
    return Done(note=f"added {len(missing)} alias(es), {len(aliases) - len(missing)} already there")
