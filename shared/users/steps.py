"""User steps of the provisioning and deprovisioning chains (the rules live in the modules named here)."""
from __future__ import annotations

from shared.microsoft.errors import NotFound
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done
from shared.seats import ledger
from shared.tenants import access
from shared.users import adoption
from shared.users.entra import ensure_user
from shared.users.licensing import assign_licences, remove_licences
from shared.users.seats import reserve_seat
from shared.users.subject import user_of

__all__ = ["assign_licences", "disable_or_delete", "ensure_user", "release_seat", "remove_licences",
           "reserve_seat"]


def disable_or_delete(ctx: StepContext) -> Done:
    """Only an account the engine may remove (shared.users.adoption.check_removal, done by remove_licences)."""
    user = user_of(ctx)
    if not user.entra_id:
        return Done(skipped=True, note="the user has no Entra object")
    graph = access.graph(ctx)
    try:
        if not ctx.context.get("removal_checked"):  # a retry started here
            adoption.check_removal(ctx, graph, user, user.entra_id)
        if ctx.params.get("delete_user"):
            graph.delete_user(user.entra_id)
    except NotFound:
        if ctx.params.get("delete_user"):  # already gone: deleting is done
            user.entra_id = user.entra_upn = user.entra_origin = None
        return Done(skipped=True, note="the Entra user no longer exists")
    if ctx.params.get("delete_user"):
        user.entra_id = user.entra_upn = user.entra_origin = None
        return Done(note="Entra user deleted")
    try:
        graph.update_user(user.entra_id, {"accountEnabled": False})
    except NotFound:
        return Done(skipped=True, note="the Entra user no longer exists")
    return Done(note="Entra user disabled")


def release_seat(ctx: StepContext) -> Done:
    ledger.release_user(ctx.session, user_of(ctx).id)
    return Done(note="seats released")
