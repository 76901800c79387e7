"""notify: the last step writes the outbox rows in the transaction that marks the request succeeded."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import User, UserService
from shared.notifications import outbox
from shared.pipeline import finish
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done
from shared.requests import kinds
from shared.security import decrypt


def notify(ctx: StepContext) -> Done:
    req = ctx.request
    payload = {**outbox.request_payload(req), "state": kinds.SUCCEEDED, "step": None,
               "finished_at": ctx.now.isoformat()}
    outbox.enqueue(ctx.session, outbox.WEBHOOK, "request.state_changed", payload)
    emailed = False
    if req.kind == kinds.USER_PROVISION and req.user_id:
        emailed = _user_provisioned(ctx)
    return Done(note="notification queued" + (" (webhook and email)" if emailed else " (webhook)"))


def _user_provisioned(ctx: StepContext) -> bool:
    """Email the user's details if configured: whether the account was created or linked, and the password
    only when this request set it (created, or reset on request). The stored password goes now.

    The email's copy of the password lives, encrypted, in its outbox row until the sender wipes it,
    so the user service never keeps one once the user exists.
    """
    req = ctx.request
    to = ctx.settings.notify_email_to
    user = ctx.session.get(User, req.user_id) if to else None  # read only when there is an email to write
    if to and user is not None:
        # A request of the previous release knows only whether it created the user.
        result = dict(ctx.context.get("result") or {}) or (
            {"user": "created", "password": "set"} if ctx.context.get("user_created") else {})
        password_set = result.get("password") == "set"
        held = ctx.session.scalar(select(UserService.temp_password_enc).where(
            UserService.user_id == req.user_id, UserService.temp_password_enc.is_not(None)).limit(1))
        secret = decrypt(held) if held and password_set else None
        outbox.enqueue(ctx.session, outbox.EMAIL, "user.provisioned",
                       {"request_id": req.id, "user_id": user.id, "to": to, "upn": user.entra_upn or user.upn,
                        "display_name": user.display_name, "user": result.get("user"),
                        "password": result.get("password"), "password_included": secret is not None},
                       secret=secret)
    finish.forget_held_passwords(ctx.session, req.user_id or "")  # notify calls this only with a user
    return bool(to)
