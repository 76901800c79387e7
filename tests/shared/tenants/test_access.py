"""What a step's Microsoft clients are built from: the reseller's credential and the connected tenant."""
from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from shared.db.models import ServiceProvider
from shared.pipeline.outcomes import StepFailed
from shared.providers.credentials import partner_credential
from shared.requests import kinds
from shared.security import encrypt
from shared.tenants import access
from tests.builders import Builder


def test_the_credential_is_read_and_decrypted_as_stored(db: Session) -> None:
    b = Builder(db)
    sp = b.provider(client_id="app-1", client_secret="first-secret")
    sp_id = sp.id
    db.expunge(sp)  # not in the session: read with one plain statement
    cred = partner_credential(db, sp_id)
    assert (cred.client_id, cred.client_secret, cred.refresh_token) == ("app-1", "first-secret", None)


def test_a_credential_changed_in_the_session_is_read_from_the_session(db: Session) -> None:
    sp = Builder(db).provider(client_secret="old-secret")
    sp.pc_client_secret_enc = encrypt("rotated-secret")  # not flushed yet
    assert partner_credential(db, sp.id).client_secret == "rotated-secret"
    with pytest.raises(StepFailed):
        partner_credential(db, None)
    assert db.get(ServiceProvider, sp.id) is sp


def test_clients_need_the_tenant_connected(world, db) -> None:  # type: ignore[no-untyped-def]
    req = world.b.request(kinds.CUSTOMER_SYNC, customer=world.customer)
    ctx = world.ctx(req, "sync")
    assert access.tenant_id(ctx) == world.tenant.tenant_id
    access.connection(ctx).state = "disconnected"
    db.flush()
    db.expire_all()
    with pytest.raises(StepFailed) as failed:
        access.graph(world.ctx(req, "sync"))  # the next message reads the connection again
    assert failed.value.code == "tenant_not_connected"


