"""The beat pass: a request blocked on the MCA resumes by itself once Partner Center says it is signed."""
from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update

from shared.agreements.resume import resume_signed
from shared.db.models import Agreement, ProvisioningRequest
from shared.db.types import utcnow
from shared.requests import kinds
from tests.builders import Builder


def _partner_calls(emulator, partner_tenant: str) -> int:
    return emulator.stats()["by_tenant"].get(partner_tenant, {}).get("requests", 0)


def _blocked_customer(db, emulator, *, signed_in_db: bool = False):
    partner = {"tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4()), "client_secret": uuid.uuid4().hex}
    emulator.add_partner(**partner)
    slug = uuid.uuid4().hex[:10]
    tenant = emulator.add_tenant(company_name=f"Blocked {slug}", initial_domain=f"b{slug}.onmicrosoft.com",
                                 skus=[], mca_signed=False, gdap="active", users=[])
    b = Builder(db)
    provider = b.provider(pc_tenant_id=partner["tenant_id"], client_id=partner["client_id"],
                          client_secret=partner["client_secret"])
    customer = b.customer(provider, tenant_id=tenant["tenant_id"], mca_signed=signed_in_db)
    db.execute(update(Agreement).where(Agreement.customer_id == customer.id)
               .values(checked_at=utcnow() - timedelta(minutes=2)))
    req = b.request(kinds.CUSTOMER_MICROSOFT_ONLINE, customer=customer)
    req.state, req.blocked_reason, req.error_code = kinds.BLOCKED, "mca_not_signed", "mca_not_signed"
    db.flush()
    return partner["tenant_id"], tenant["tenant_id"], req


def test_a_request_blocked_on_the_mca_resumes_once_beat_sees_it_signed(db, maker, live_emulator, published):
    partner, tenant, req = _blocked_customer(db, live_emulator)
    assert resume_signed(session_factory=maker, limit=1000) == []  # not signed yet: nothing moves
    db.expire_all()
    assert db.get(ProvisioningRequest, req.id).state == kinds.BLOCKED
    calls = _partner_calls(live_emulator, partner)
    assert calls >= 1  # Partner Center was asked, over HTTPS, with the reseller's own app
    live_emulator._control.patch(f"/_emulator/tenants/{tenant}", json={"mca_signed": True}).raise_for_status()
    # Signed in the portal a moment later: asked at most once a minute, so this pass leaves it alone...
    assert resume_signed(session_factory=maker, limit=1000) == []
    assert _partner_calls(live_emulator, partner) == calls
    # ...and the next one, a minute on, resumes the request and publishes it.
    refs = resume_signed(utcnow() + timedelta(seconds=61), session_factory=maker, limit=1000)
    assert [r.id for r in refs] == [req.id] and [p.id for p in published] == [req.id]
    db.expire_all()
    resumed = db.get(ProvisioningRequest, req.id)
    assert resumed.state == kinds.QUEUED and resumed.blocked_reason is None and resumed.current_step == "check_mca"
    assert db.get(Agreement, db.query(Agreement.id).filter_by(customer_id=req.customer_id).scalar()).signed


def test_a_signature_already_stored_resumes_without_asking_partner_center(db, maker, live_emulator, published):
    partner, _, req = _blocked_customer(db, live_emulator, signed_in_db=True)
    refs = resume_signed(session_factory=maker, limit=1000)
    assert req.id in [r.id for r in refs]
    assert _partner_calls(live_emulator, partner) == 0
