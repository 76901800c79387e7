"""ensure_user: link the user's own Entra account, or create it exactly once on the right domain; set its password
when created or asked to; enable it again.

Which account may be linked, and when a link is an adoption, is shared.users.adoption's rule.
"""
from __future__ import annotations

from typing import Any

from shared.db.models import TenantConnection, User
from shared.microsoft.errors import Conflict, NotFound, Throttled
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, RetrySoon, StepFailed
from shared.pipeline.ports import Graph
from shared.security import decrypt
from shared.tenants import access
from shared.tenants.domains import is_verified, local_part, refresh_domains
from shared.users import adoption
from shared.users.replication import NEW_USER_SETTLE_S, confirming, next_look
from shared.users.subject import ENTRA_FIELDS, service_of, user_of

# What the finished request says (its `result`): how the account came to be and its password.
CREATED, LINKED = "created", "linked"
PASSWORD_SET, PASSWORD_KEPT = "set", "kept"


def _own_domain_verified(ctx: StepContext, conn: TenantConnection, graph: Graph, user: User) -> bool:
    # A domain verified since the last look is what re-provisioning is for: read live when unsure.
    if not is_verified(conn, user.upn):
        refresh_domains(conn, graph)
    return is_verified(conn, user.upn)


def _fallback_upn(conn: TenantConnection, user: User) -> str:
    if not conn.initial_domain:
        raise StepFailed("tenant_domains_unknown", "the tenant's onmicrosoft.com domain is not known")
    return f"{local_part(user.upn)}@{conn.initial_domain}".lower()


def _linked(ctx: StepContext, graph: Graph, user: User) -> dict[str, Any] | None:
    if not user.entra_id:
        return None
    try:
        return graph.get_user(user.entra_id, select=ENTRA_FIELDS)
    except NotFound:
        if confirming(ctx):
            raise RetrySoon(next_look(ctx), "the new user is not readable yet") from None
        user.entra_id = user.entra_upn = user.entra_origin = None  # deleted in Entra since: link or create afresh
        return None


def _origin(ctx: StepContext, user: User, entra: dict[str, Any], name: str) -> str | None:
    """How the engine holds the account found at `name`: created (ours), None (it existed before: an
    adoption, allowed only at the user's own UPN), or upn_conflict (someone else's, at another name)."""
    if adoption.made_by_us(ctx, user, entra):
        return adoption.CREATED
    if str(entra.get("userPrincipalName") or name).lower() != user.upn.lower():
        raise adoption.conflict(name, entra)
    return None


def _resolve(ctx: StepContext, graph: Graph, user: User, own_verified: bool,
             fallback: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the account this user may link, how the engine holds it), or (None, None): create one."""
    recorded = _linked(ctx, graph, user)
    if recorded is not None:
        if user.entra_origin in adoption.VETTED:
            return recorded, user.entra_origin
        return recorded, _origin(ctx, user, recorded, str(recorded.get("userPrincipalName") or user.upn))
    own = graph.find_user_by_upn(user.upn, select=ENTRA_FIELDS)
    if own is not None:
        return own, _origin(ctx, user, own, user.upn)
    if not own_verified and fallback != user.upn.lower():
        # Where a create would go: only the engine's own earlier create may be found there.
        there = graph.find_user_by_upn(fallback, select=ENTRA_FIELDS)
        if there is not None:
            return there, _origin(ctx, user, there, fallback)
    return None, None


def _password(ctx: StepContext, user: User) -> str:
    service = service_of(ctx, user)
    if service is None or not service.temp_password_enc:
        raise StepFailed("password_missing", "no temporary password is held for the user")
    return decrypt(service.temp_password_enc)


def _create_body(ctx: StepContext, user: User, upn: str) -> dict[str, Any]:
    nickname = "".join(c for c in local_part(upn) if c.isalnum() or c in "._-") or "user"
    return {"accountEnabled": True, "displayName": user.display_name, "mailNickname": nickname[:64],
            "userPrincipalName": upn, "givenName": user.first_name, "surname": user.last_name,
            "usageLocation": user.usage_location,
            "passwordProfile": {"password": _password(ctx, user), "forceChangePasswordNextSignIn": True}}


def _create(ctx: StepContext, graph: Graph, user: User, upn: str) -> tuple[dict[str, Any], str | None]:
    if confirming(ctx):
        raise RetrySoon(next_look(ctx), "an earlier create may not be readable yet")
    body = _create_body(ctx, user, upn)
    sent = ctx.now.isoformat()
    # Every attempt stays on record: an account found later is the engine's own only if one made it.
    ctx.checkpoint(create_sent_at=sent, create_attempts=[*(ctx.context.get("create_attempts") or []), sent])
    try:
        created = graph.create_user(body)
    except Throttled:
        # Refused by Microsoft (429) or by our limiter before sending: nothing was created, so the next
        # attempt need not look for this one during create_confirm_s.
        ctx.checkpoint(create_sent_at=None)
        raise
    except Conflict as exc:
        ctx.note_error(exc)
        found = graph.find_user_by_upn(upn, select=ENTRA_FIELDS)
        if found is None:
            raise RetrySoon(next_look(ctx), "the UPN is taken but its user is not readable yet") from None
        return found, _origin(ctx, user, found, upn)
    ctx.remember(user_created=True)
    # Graph's answer to a create leaves assignedLicenses out, but a user this POST just made holds no
    # direct licence: saying so spares assign_licences a read (a Microsoft call against the tenant's
    # throttling budget, and a 404 while the new user replicates).
    return {"assignedLicenses": [], **created}, adoption.CREATED


def ensure_user(ctx: StepContext) -> Done:
    """Link the user's own account, else create (own UPN if its domain is verified, else on the
    onmicrosoft.com domain).

    Never two creates: before a create the attempt is made durable (`create_sent_at`); if its answer
    is lost (timeout, killed worker) the user may exist but not be readable yet (replication), so the
    step looks for it for `create_confirm_s` before it creates again, and a duplicate-UPN conflict is
    answered by reading and recognising the account, never by a second create.

    An account that existed keeps its password unless the request asks for a reset
    (`reset_password`); a disabled one (after deprovisioning) is enabled again.
    """
    user = user_of(ctx)
    if not user.usage_location:
        raise StepFailed("usage_location_missing", "the user has no usage location (needed before licensing)")
    conn = access.connection(ctx)
    graph = access.graph(ctx, conn)
    own_verified = _own_domain_verified(ctx, conn, graph, user)
    entra, origin = _resolve(ctx, graph, user, own_verified, _fallback_upn(conn, user))
    how = "linked the existing Entra user"
    created_here = False  # by this attempt's create, answered: the new user is not readable for a moment
    if entra is None:
        entra, origin = _create(ctx, graph, user, user.upn if own_verified else _fallback_upn(conn, user))
        created_here = bool(ctx.context.get("user_created"))
        how = "created the Entra user" if created_here else how
    if origin == adoption.CREATED and not ctx.context.get("user_created") and \
            adoption.made_by_this_request(ctx, entra):
        ctx.remember(user_created=True)  # found after our own create whose answer was lost
        how = "created the Entra user (confirmed by reading it back)"
    if origin is None:
        adoption.adopt(ctx, graph, user, entra)
        origin = adoption.ADOPTED
        how = "linked the existing Entra user, adopted"
    user.entra_origin = origin
    user.entra_id = str(entra["id"])
    user.entra_upn = str(entra.get("userPrincipalName") or user.upn).lower()
    created_now = bool(ctx.context.get("user_created"))
    changes: dict[str, Any] = {}
    if own_verified and user.entra_upn != user.upn.lower():
        changes["userPrincipalName"] = user.upn  # the domain became verified: take the user's own UPN
    if "usageLocation" in entra and not entra["usageLocation"]:
        changes["usageLocation"] = user.usage_location
    if entra.get("accountEnabled") is False:
        changes["accountEnabled"] = True  # deprovisioning disabled it: provisioning enables it again
    if ctx.params.get("reset_password") and not created_now:
        changes["passwordProfile"] = {"password": _password(ctx, user), "forceChangePasswordNextSignIn": True}
    if changes:
        graph.update_user(user.entra_id, changes)
        user.entra_upn = str(changes.get("userPrincipalName", user.entra_upn)).lower()
        how += ", updated " + ", ".join(sorted(changes))
    password = PASSWORD_SET if created_now or "passwordProfile" in changes else PASSWORD_KEPT
    # What assign_licences needs to know on its first attempt, without another read (and a new user
    # may not be readable yet anyway); and what the finished request reports.
    ctx.remember(entra_id=user.entra_id,
                 entra_licences=[str(lic.get("skuId")).lower() for lic in entra.get("assignedLicenses") or []]
                 if "assignedLicenses" in entra else None,
                 result={"user": CREATED if created_now else LINKED, "password": password})
    # A licence assigned the moment after a create mostly answers 404 (replication): see NEW_USER_SETTLE_S.
    return Done(note=f"{how} ({user.entra_upn})", not_before=ctx.after(NEW_USER_SETTLE_S) if created_here else None)
