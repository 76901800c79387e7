"""Microsoft's access refusals as `blocked` outcomes: a reason, a message naming the reseller and tenant, the fix.

None of these passes by itself within a retry budget, so none is retried: the request waits, blocked, until a
person fixes the cause (or the cause is a consent still propagating), and the beat resumes it once access
works (shared.tenants.resume).
"""
from __future__ import annotations

from shared.microsoft.errors import ConsentMissing, CredentialsRejected, MicrosoftError, PermissionDenied
from shared.pipeline.outcomes import Blocked
from shared.tenants import roles

CONSENT_PENDING = "consent_pending"
CONSENT_MISSING = "consent_missing"
GDAP_MISSING = "gdap_missing"
GDAP_ROLES_MISSING = "gdap_roles_missing"
PARTNER_CREDENTIALS_INVALID = "partner_credentials_invalid"
PARTNER_PERMISSION_MISSING = "partner_permission_missing"

# What a person does about each, in one sentence (the API's health answers say the same).
FIXES = {
    CONSENT_PENDING: "Wait: the request resumes by itself once Microsoft applies the app's consent; if it never "
                     "does, retry the request (POST /v1/requests/{id}/retry), which grants the consent again.",
    CONSENT_MISSING: "Connect the tenant again (PUT /v1/customers/{id}/services/azure-ad), which grants the app's "
                     "consent through Partner Center; blocked requests resume by themselves once sign-in works.",
    GDAP_MISSING: "Ask the customer to approve a GDAP relationship with the partner in Partner Center "
                  "(Customers > Admin relationships); blocked requests resume by themselves once it is active.",
    GDAP_ROLES_MISSING: "Add the missing roles to the customer's GDAP relationship in Partner Center (or create one "
                        "that grants them); blocked requests resume by themselves once it does.",
    PARTNER_CREDENTIALS_INVALID: "Rotate the reseller's credential: POST /v1/service-providers/{id}/credentials "
                                 "with a valid client secret, or a new refresh token from `provisioner partner "
                                 "consent`; blocked requests resume then.",
    PARTNER_PERMISSION_MISSING: "Grant the partner app admin consent in the partner tenant for the Graph "
                                "permission DelegatedAdminRelationship.Read.All; blocked requests resume by "
                                "themselves once it works.",
}
RESUMABLE = frozenset(FIXES)


def access_blocked(exc: MicrosoftError, step: str) -> Blocked | None:
    """The blocked outcome for an access refusal during `step`, or None for any other error."""
    who = str(exc.partner) if exc.partner is not None else "the reseller"
    in_partner_tenant = exc.partner is not None and exc.tenant_id == exc.partner.tenant_id
    if isinstance(exc, CredentialsRejected) or (isinstance(exc, ConsentMissing) and in_partner_tenant):
        return blocked(PARTNER_CREDENTIALS_INVALID,
                       f"{who}: Microsoft refuses the reseller's own sign-in ({exc.code}): {exc.message}")
    if isinstance(exc, ConsentMissing):
        return blocked(CONSENT_MISSING, f"{who}: the app has no consent in tenant {exc.tenant_id} ({exc.code}), "
                                        f"so Microsoft issues it no token there")
    if isinstance(exc, PermissionDenied):
        if in_partner_tenant:
            return blocked(PARTNER_PERMISSION_MISSING, f"{who}: Microsoft refuses a call in the partner's own "
                                                       f"tenant ({exc.message})")
        need = roles.for_step(step)
        asked = f"{need.role} (needed for {need.work})" if need else "a role that reads the directory"
        return blocked(GDAP_ROLES_MISSING, f"{who}: {exc.message} in tenant {exc.tenant_id}: the GDAP "
                                           f"relationship does not grant {asked}, or is not active")
    return None


def blocked(reason: str, what: str) -> Blocked:
    return Blocked(reason, f"{what}. Fix: {FIXES[reason]}")
