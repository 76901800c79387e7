"""Whose Entra account is it: the engine's own (created), adopted (it existed: a reseller's call) or a stranger's.

The rules (issues 15 and 18):

- The engine links only the account whose UPN is the user's own UPN, or the account this engine
  recorded for the user (its own create, even one whose answer was lost, recognised by the
  account's `createdDateTime` against the create attempts the requests made durable). Any other
  account at a name the engine wanted (the onmicrosoft.com fallback) is someone else's: the
  request fails `upn_conflict` naming it.
- Linking an account the engine did not create is an adoption: it needs a reseller or operator
  key (a customer key gets `adoption_requires_reseller`), is audited and marks the user
  `source: adopted`. An account holding a directory role is never adopted (`privileged_account`).
- Disabling or deleting an account the engine did not create needs a reseller or operator key; an
  account holding a directory role is never disabled or deleted; nothing is licensed, disabled or
  deleted on an account linked other than by its own UPN or the engine's own create.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from shared import audit
from shared.auth.principal import CUSTOMER
from shared.db.models import ProvisioningRequest, User
from shared.errors import StateConflict
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import StepFailed
from shared.pipeline.ports import Graph
from shared.plans.limits import role_of_key
from shared.requests import kinds

CREATED, ADOPTED, SYNCED = "created", "adopted", "synced"
VETTED = frozenset({CREATED, ADOPTED})
DIRECTORY_ROLE = "#microsoft.graph.directoryRole"
# A create's account carries a createdDateTime set by Microsoft between our send and its answer. The
# window around each durable attempt allows for clock skew before it (small: a stranger's account made
# just before our attempt must not pass as ours) and for a slow answer after it.
SKEW_BEFORE = timedelta(seconds=30)
ANSWER_WITHIN = timedelta(seconds=300)


# -- the API's early answers --------------------------------------------------------------------------
def refuse_customer_adoption(role: str, entra_id: str | None, origin: str | None, upn: str) -> None:
    """409 adoption_requires_reseller when a customer key would make the engine take on an account it did
    not create: the user is linked to one that neither the engine made nor a reseller adopted."""
    if role == CUSTOMER and entra_id and origin not in VETTED:
        raise StateConflict("adoption_requires_reseller",
                            f"the Entra account of {upn} was not created by the engine: linking it needs a "
                            "reseller or operator key", upn=upn)


def refuse_customer_removal(role: str, entra_id: str | None, origin: str | None, upn: str) -> None:
    """409 adoption_requires_reseller when a customer key would disable or delete an account the engine
    did not create."""
    if role == CUSTOMER and entra_id and origin != CREATED:
        raise StateConflict("adoption_requires_reseller",
                            f"the Entra account of {upn} was not created by the engine: disabling or deleting "
                            "it needs a reseller or operator key", upn=upn)


# -- the pipeline's rules ------------------------------------------------------------------------------
def made_by_us(ctx: StepContext, user: User, entra: dict[str, Any]) -> bool:
    """Whether this account is one the engine's own create made (its answer maybe lost): created inside
    the window of a create attempt a request of this user made durable before sending it."""
    return made_by_this_request(ctx, entra) or _made_in(entra, _earlier_attempts(ctx, user))


def made_by_this_request(ctx: StepContext, entra: dict[str, Any]) -> bool:
    return _made_in(entra, _times(ctx.context))


def _made_in(entra: dict[str, Any], attempts: Iterable[datetime]) -> bool:
    created = _parse(entra.get("createdDateTime"))
    return created is not None and any(sent - SKEW_BEFORE <= created <= sent + ANSWER_WITHIN for sent in attempts)


def _earlier_attempts(ctx: StepContext, user: User) -> list[datetime]:
    # A request that failed after a lost create answer leaves the account behind: the user's next
    # request must still know it for the engine's own.
    found: list[datetime] = []
    for context in ctx.session.scalars(select(ProvisioningRequest.context).where(
            ProvisioningRequest.user_id == user.id, ProvisioningRequest.kind == kinds.USER_PROVISION,
            ProvisioningRequest.id != ctx.request.id)):
        found.extend(_times(context or {}))
    return found


def _times(context: dict[str, Any]) -> Iterable[datetime]:
    for raw in [*(context.get("create_attempts") or []), context.get("create_sent_at")]:
        when = _parse(raw)
        if when is not None:
            yield when


def _parse(raw: Any) -> datetime | None:
    if not raw:
        return None
    try:
        when = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else None


def conflict(name: str, entra: dict[str, Any]) -> StepFailed:
    return StepFailed("upn_conflict", f"{name} belongs to another Entra account (id {entra.get('id')}, "
                                      f"{entra.get('userPrincipalName')}) that the engine did not create: it "
                                      "is not linked, licensed or changed")


def directory_roles(graph: Graph, entra_id: str) -> list[str]:
    """The directory roles (Graph memberOf directoryRole objects) the account holds, by name."""
    return [str(o.get("displayName") or o.get("roleTemplateId") or o.get("id"))
            for o in graph.member_of(entra_id) if o.get("@odata.type") == DIRECTORY_ROLE]


def refuse_privileged(graph: Graph, entra_id: str, upn: str, action: str) -> None:
    roles = directory_roles(graph, entra_id)
    if roles:
        raise StepFailed("privileged_account", f"the Entra account {upn} holds directory role(s) "
                                               f"{', '.join(sorted(roles))}: the engine never {action} it")


def creator_is_customer(ctx: StepContext) -> bool:
    return role_of_key(ctx.session, ctx.request.created_by) == CUSTOMER


def adopt(ctx: StepContext, graph: Graph, user: User, entra: dict[str, Any]) -> None:
    """Link an account the engine did not create, if this request may: not for a customer key, never one
    holding a directory role. Audited; the user shows `source: adopted`."""
    upn = str(entra.get("userPrincipalName") or user.upn)
    if creator_is_customer(ctx):
        raise StepFailed("adoption_requires_reseller", f"the Entra account {upn} existed before: linking an "
                                                       "account the engine did not create needs a reseller or "
                                                       "operator key")
    refuse_privileged(graph, str(entra["id"]), upn, "adopts")
    audit.record(ctx.session, f"key:{ctx.request.created_by}" if ctx.request.created_by else "system",
                 "user.adopted", "user", user.id, {"request_id": ctx.request.id, "entra_id": str(entra["id"]),
                                                   "entra_upn": upn, "source": user.source,
                                                   "linked_before_as": user.entra_origin})
    user.entra_origin = ADOPTED
    if user.source == "local":
        user.source = ADOPTED


def may_change(user: User) -> bool:
    """Licences, disabling and deleting only touch an account the engine made, adopted, or holds by the
    user's own UPN (the sync links by UPN or id; a link of any other kind is not enough)."""
    return user.entra_origin in VETTED or (user.entra_upn or "").lower() == user.upn.lower()


def check_removal(ctx: StepContext, graph: Graph, user: User, entra_id: str) -> None:
    """Before licences are removed and the account is disabled or deleted (the deprovisioning chain)."""
    upn = user.entra_upn or user.upn
    if not may_change(user):
        raise StepFailed("upn_conflict", f"the Entra account {upn} was neither created by the engine nor linked "
                                         f"by the user's own UPN {user.upn}: nothing is changed on it")
    if user.entra_origin != CREATED and creator_is_customer(ctx):
        raise StepFailed("adoption_requires_reseller", f"the Entra account {upn} was not created by the "
                                                       "engine: disabling or deleting it needs a reseller or "
                                                       "operator key")
    refuse_privileged(graph, entra_id, upn, "disables or deletes")
