"""ensure_user: link the Entra user with the same UPN, or create it exactly once, on the right domain."""
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
from shared.users.subject import ENTRA_FIELDS, service_of, user_of

# How soon to look again for a user that was created but is not readable yet.
REPLICATION_RETRY_S = 2.0


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
        if ctx.seconds_since(ctx.context.get("create_sent_at")) < ctx.settings.create_confirm_s:
            raise RetrySoon(REPLICATION_RETRY_S, "the new user is not readable yet") from None
        user.entra_id = user.entra_upn = None  # deleted in Entra since: link or create afresh
        return None


def _find(graph: Graph, upns: list[str]) -> dict[str, Any] | None:
    for upn in dict.fromkeys(upns):
        found = graph.find_user_by_upn(upn, select=ENTRA_FIELDS)
        if found:
            return found
    return None


def _create_body(ctx: StepContext, user: User, upn: str) -> dict[str, Any]:
    service = service_of(ctx, user)
    if service is None or not service.temp_password_enc:
        raise StepFailed("password_missing", "no temporary password is held for the new user")
    nickname = "".join(c for c in local_part(upn) if c.isalnum() or c in "._-") or "user"
    return {"accountEnabled": True, "displayName": user.display_name, "mailNickname": nickname[:64],
            "userPrincipalName": upn, "givenName": user.first_name, "surname": user.last_name,
            "usageLocation": user.usage_location,
            "passwordProfile": {"password": decrypt(service.temp_password_enc),
                                "forceChangePasswordNextSignIn": True}}


def _create(ctx: StepContext, graph: Graph, user: User, upn: str) -> dict[str, Any]:
    if ctx.seconds_since(ctx.context.get("create_sent_at")) < ctx.settings.create_confirm_s:
        raise RetrySoon(REPLICATION_RETRY_S, "an earlier create may not be readable yet")
    body = _create_body(ctx, user, upn)
    ctx.checkpoint(create_sent_at=ctx.now.isoformat())
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
            raise RetrySoon(REPLICATION_RETRY_S, "the UPN is taken but its user is not readable yet") from None
        return found
    ctx.remember(user_created=True)
    # Graph's answer to a create leaves assignedLicenses out, but a user this POST just made holds no
    # direct licence: saying so spares assign_licences a read (a Microsoft call against the tenant's
    # throttling budget, and a 404 while the new user replicates).
    return {"assignedLicenses": [], **created}


def ensure_user(ctx: StepContext) -> Done:
    """Link by UPN, else create (own UPN if its domain is verified, else on the onmicrosoft.com domain).

    Never two creates: before a create the attempt is made durable (`create_sent_at`); if its answer
    is lost (timeout, killed worker) the user may exist but not be readable yet (replication), so the
    step looks for it for `create_confirm_s` before it creates again, and a duplicate-UPN conflict is
    answered by reading and linking, never by a second create.
    """
    user = user_of(ctx)
    if not user.usage_location:
        raise StepFailed("usage_location_missing", "the user has no usage location (needed before licensing)")
    conn = access.connection(ctx)
    graph = access.graph(ctx, conn)
    own_verified = _own_domain_verified(ctx, conn, graph, user)
    fallback = _fallback_upn(conn, user)
    # The fallback UPN is looked up only when it is where a create would go: a stray user there is
    # not "the same UPN" once the user's own domain is verified.
    entra = _linked(ctx, graph, user) or _find(graph, [user.upn] if own_verified else [user.upn, fallback])
    how = "linked the existing Entra user"
    if entra is None:
        entra = _create(ctx, graph, user, user.upn if own_verified else fallback)
        how = "created the Entra user"
    elif ctx.context.get("create_sent_at"):
        ctx.remember(user_created=True)  # found after our own create whose answer was lost
        how = "created the Entra user (confirmed by reading it back)"
    user.entra_id = str(entra["id"])
    user.entra_upn = str(entra.get("userPrincipalName") or user.upn).lower()
    changes: dict[str, Any] = {}
    if own_verified and user.entra_upn != user.upn.lower():
        changes["userPrincipalName"] = user.upn  # the domain became verified: take the user's own UPN
    if "usageLocation" in entra and not entra["usageLocation"]:
        changes["usageLocation"] = user.usage_location
    if changes:
        graph.update_user(user.entra_id, changes)
        user.entra_upn = str(changes.get("userPrincipalName", user.entra_upn)).lower()
        how += ", updated " + ", ".join(sorted(changes))
    # What assign_licences needs to know on its first attempt, without another read (and a new user
    # may not be readable yet anyway).
    ctx.remember(entra_id=user.entra_id,
                 entra_licences=[str(lic.get("skuId")).lower() for lic in entra.get("assignedLicenses") or []]
                 if "assignedLicenses" in entra else None)
    return Done(note=f"{how} ({user.entra_upn})")
