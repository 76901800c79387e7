"""Access refusals end a step as `blocked` with a reason and a fix, never as retries (through the engine)."""
from __future__ import annotations

import pytest

from shared.db.models import ProvisioningRequest
from shared.microsoft.credentials import PartnerApp
from shared.microsoft.errors import ConsentMissing, CredentialsRejected, Forbidden, MicrosoftError, PermissionDenied
from shared.requests import kinds
from tests.shared.steps_support import run_link

LICENSE_ADMIN = "4d6ac14f-3453-41d0-bef9-a3e0c569773a"


def _run_to(engine, world, db, step: str, exc: MicrosoftError, method: str) -> ProvisioningRequest:
    user = world.user(f"u{abs(hash(step + method)) % 10_000}@contoso.com")
    req = world.b.provision(user, world.plan)
    world.ms.fail[method] = [exc]
    names = kinds.steps_of(req.kind)
    for name in names[:names.index(step) + 1]:
        verdict = run_link(engine, req.id, name)
    assert verdict.action == "halt"
    db.expire_all()
    row = db.get(ProvisioningRequest, req.id)
    assert row is not None and row.current_step == step
    return row


def _app(world) -> PartnerApp:
    return PartnerApp(world.provider.name, "partner-app", world.provider.pc_tenant_id)


def test_insufficient_privileges_block_with_the_role_the_step_needs(world, engine, db):
    denied = PermissionDenied("Graph 403: Insufficient privileges to complete the operation.", status=403,
                              code="Authorization_RequestDenied", tenant_id=world.tenant.tenant_id,
                              partner=_app(world))
    row = _run_to(engine, world, db, "assign_licences", denied, "assign_licences")
    assert row.state == kinds.BLOCKED and row.blocked_reason == "gdap_roles_missing" and row.retries == 0
    assert f"License Administrator ({LICENSE_ADMIN}) (needed for licences)" in row.error_message
    assert world.provider.name in row.error_message and world.tenant.tenant_id in row.error_message
    assert "Fix: Add the missing roles" in row.error_message
    step = next(s for s in row.steps if s.name == "assign_licences")
    assert step.microsoft_error["code"] == "Authorization_RequestDenied"
    assert world.ms.calls["assign_licences"] == 1  # once: no retry


@pytest.mark.parametrize(("make", "reason"), [
    (lambda w: ConsentMissing("AADSTS700016", code="AADSTS700016", tenant_id=w.tenant.tenant_id, partner=_app(w)),
     "consent_missing"),
    (lambda w: ConsentMissing("AADSTS65001", code="AADSTS65001", tenant_id=w.tenant.tenant_id, partner=_app(w)),
     "consent_missing"),
    (lambda w: CredentialsRejected("AADSTS7000215", code="AADSTS7000215", tenant_id=w.tenant.tenant_id,
                                   partner=_app(w)), "partner_credentials_invalid"),
    # The app unknown in its own tenant: the reseller's client id is wrong, not a customer's consent.
    (lambda w: ConsentMissing("AADSTS700016", code="AADSTS700016", tenant_id=w.provider.pc_tenant_id,
                              partner=_app(w)), "partner_credentials_invalid"),
    (lambda w: PermissionDenied("Graph 403", code="Authorization_RequestDenied", tenant_id=w.provider.pc_tenant_id,
                                partner=_app(w)), "partner_permission_missing"),
])
def test_sign_in_refusals_block_with_a_reason_an_operator_can_act_on(world, engine, db, make, reason):
    row = _run_to(engine, world, db, "ensure_user", make(world), "find_user_by_upn")
    assert row.state == kinds.BLOCKED and row.blocked_reason == reason and row.error_code == reason
    assert "Fix:" in row.error_message and row.retries == 0 and row.next_attempt_at is None


def test_other_refusals_still_fail(world, engine, db):
    row = _run_to(engine, world, db, "ensure_user", Forbidden("Partner Center 403: 13605", status=403,
                                                              code="13605"), "find_user_by_upn")
    assert row.state == kinds.FAILED and row.error_code == "microsoft_forbidden"
