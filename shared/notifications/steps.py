"""notify: the last step writes the outbox rows in the transaction that marks the request succeeded."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.db.models import User, UserService
from shared.notifications import outbox
from shared.notifications.announce import announce, audiences_for
from shared.notifications.recipients import PROVISIONED
from shared.pipeline import finish
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done
from shared.requests import kinds
from shared.security import decrypt


def notify(ctx: StepContext) -> Done:
    req = ctx.request
    succeeded = {"state": kinds.SUCCEEDED, "step": None, "finished_at": ctx.now.isoformat()}
    outbox.enqueue(ctx.session, outbox.WEBHOOK, "request.state_changed", {**outbox.request_payload(req), **succeeded})
    to = audiences_for(ctx.session, req, PROVISIONED, ctx.settings)
    details: dict[str, Any] = succeeded
    password = None
    if to and req.kind == kinds.USER_PROVISION and req.user_id:
        details, password = _user_provisioned(ctx, succeeded, any(a.password for a in to))
    emails = announce(ctx.session, req, PROVISIONED, to=to, details=details, password=password) if to else 0
    if req.kind == kinds.USER_PROVISION and req.user_id:
        # The email's copy of the password lives, encrypted, in its outbox row until the sender wipes it,
        # so the user service never keeps one once the user exists.
        finish.forget_held_passwords(ctx.session, req.user_id)
    return Done(note="notification queued" + (f" (webhook and {emails} email(s))" if emails else " (webhook)"))


def _user_provisioned(ctx: StepContext, details: dict[str, Any],
                      password_wanted: bool) -> tuple[dict[str, Any], str | None]:
    """The user's details for the email, and the password only when the engine set it (a user it created)
    and someone may read it."""
    req = ctx.request
    user = ctx.session.get(User, req.user_id)
    if user is None:
        return details, None
    details = {**details, "user_id": user.id, "upn": user.entra_upn or user.upn, "display_name": user.display_name}
    if not password_wanted or not ctx.context.get("user_created"):
        return details, None
    held = ctx.session.scalar(select(UserService.temp_password_enc).where(
        UserService.user_id == req.user_id, UserService.temp_password_enc.is_not(None)).limit(1))
    return details, decrypt(held) if held else None
