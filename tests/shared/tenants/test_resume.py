"""The beat's resume pass: requests blocked on access go back to the queue once Microsoft grants it."""
from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared.db.models import ProvisioningRequest
from shared.db.types import utcnow
from shared.microsoft.errors import ConsentMissing, CredentialsRejected
from shared.requests import kinds
from shared.tenants.resume import resume_blocked_access
from tests.shared.fakes import ENGINE_ROLES

USER_ADMIN, LICENSE_ADMIN, EXCHANGE_ADMIN = ENGINE_ROLES


@pytest.fixture(autouse=True)
def only_ours(db) -> None:
    """Blocked requests other tests committed are not due here (this test's transaction is rolled back)."""
    db.execute(update(ProvisioningRequest).where(ProvisioningRequest.state == kinds.BLOCKED)
               .values(next_attempt_at=utcnow() + timedelta(days=365)))


def _blocked(world, reason: str, step: str) -> ProvisioningRequest:
    user = world.user(f"blocked-{uuid.uuid4().hex[:8]}@contoso.com")
    req = world.b.provision(user, world.plan, reserve=False)
    req.state, req.blocked_reason, req.error_code, req.current_step = kinds.BLOCKED, reason, reason, step
    for s in req.steps:
        if s.name == step:
            s.state = kinds.STEP_WAITING
            break
        s.state = kinds.STEP_SUCCEEDED
    world.db.flush()
    return req


def _state(db, req) -> ProvisioningRequest:
    db.expire_all()
    return db.get(ProvisioningRequest, req.id)


def test_a_consent_that_now_works_resumes_its_requests_from_the_blocked_step(world, db, maker, settings, published):
    first = _blocked(world, "consent_missing", "ensure_user")
    second = _blocked(world, "consent_missing", "ensure_user")
    refused = ConsentMissing("AADSTS700016", code="AADSTS700016", tenant_id=world.tenant.tenant_id)
    world.ms.fail["domains"] = [refused]
    now = utcnow()
    assert resume_blocked_access(world.ms, settings=settings, now=now, factory=maker) == []
    assert world.ms.calls["domains"] == 1  # one check for both: same reseller, tenant and question
    assert _state(db, first).next_attempt_at == now + timedelta(seconds=settings.access_recheck_s)
    assert resume_blocked_access(world.ms, settings=settings, now=now, factory=maker) == []
    assert world.ms.calls["domains"] == 1  # not due again before the recheck interval

    later = now + timedelta(seconds=settings.access_recheck_s + 1)
    assert sorted(resume_blocked_access(world.ms, settings=settings, now=later, factory=maker)) == sorted(
        [first.id, second.id])
    row = _state(db, first)
    assert row.state == kinds.QUEUED and row.blocked_reason is None and row.current_step == "ensure_user"
    assert sorted((r.id, r.from_step) for r in published) == sorted(
        [(first.id, "ensure_user"), (second.id, "ensure_user")])


def test_missing_roles_resume_only_once_the_relationship_grants_what_the_step_needs(world, db, maker, settings,
                                                                                  published):
    world.tenant.gdap_roles = (EXCHANGE_ADMIN,)
    req = _blocked(world, "gdap_roles_missing", "assign_licences")
    now = utcnow()
    assert resume_blocked_access(world.ms, settings=settings, now=now, factory=maker) == []
    assert _state(db, req).state == kinds.BLOCKED
    world.tenant.gdap_roles = (EXCHANGE_ADMIN, LICENSE_ADMIN)
    later = now + timedelta(seconds=settings.access_recheck_s + 1)
    assert resume_blocked_access(world.ms, settings=settings, now=later, factory=maker) == [req.id]
    assert [r.from_step for r in published] == ["assign_licences"]


def test_the_resellers_credential_is_checked_with_its_own_sign_in(world, db, maker, settings, published):
    req = _blocked(world, "partner_credentials_invalid", "ensure_user")
    world.ms.fail["check_connection"] = [CredentialsRejected("AADSTS7000215", code="AADSTS7000215")]
    now = utcnow()
    assert resume_blocked_access(world.ms, settings=settings, now=now, factory=maker) == []
    later = now + timedelta(seconds=settings.access_recheck_s + 1)
    assert resume_blocked_access(world.ms, settings=settings, now=later, factory=maker) == [req.id]


def test_a_pass_is_bounded_and_leaves_other_blocked_requests_alone(world, db, maker, settings, published):
    mca = _blocked(world, "mca_not_signed", "check_mca")
    batch = [_blocked(world, "gdap_missing", "ensure_user") for _ in range(3)]
    small = settings.model_copy(update={"access_resume_batch": 2})
    now = utcnow()
    assert len(resume_blocked_access(world.ms, settings=small, now=now, factory=maker)) == 2
    assert len(resume_blocked_access(world.ms, settings=small, now=now, factory=maker)) == 1
    assert {_state(db, r).state for r in batch} == {kinds.QUEUED}
    assert _state(db, mca).state == kinds.BLOCKED  # a person records the MCA; nothing to probe
