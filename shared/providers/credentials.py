"""A reseller's Partner Center credential, decrypted for one step and never stored elsewhere."""
from __future__ import annotations

from functools import cache, lru_cache
from typing import cast

from sqlalchemy import Executable, Table, bindparam, select
from sqlalchemy.orm import Session

from shared.db.models import Customer, ServiceProvider
from shared.microsoft.credentials import PartnerCredential
from shared.pipeline.outcomes import StepFailed
from shared.security import decrypt


def partner_credential(session: Session, service_provider_id: str | None) -> PartnerCredential:
    # One plain statement (every Microsoft call of every step starts here); a provider the session
    # holds with unflushed changes is read from the session instead.
    if service_provider_id and (ServiceProvider, (service_provider_id,), None) in session.identity_map:
        sp = session.get(ServiceProvider, service_provider_id)
        assert sp is not None
        row = (sp.pc_tenant_id, sp.pc_client_id, sp.pc_client_secret_enc, sp.pc_refresh_token_enc)
    elif service_provider_id:
        row = session.connection().execute(_credential_stmt(), {"sp": service_provider_id}).first()
    else:
        row = None
    if row is None:
        raise StepFailed("service_provider_missing", "the request has no service provider")
    tenant_id, client_id, secret_enc, refresh_enc = row
    return PartnerCredential(tenant_id=tenant_id, client_id=client_id, client_secret=_plain(secret_enc),
                             refresh_token=_plain(refresh_enc) if refresh_enc else None)


@lru_cache(maxsize=256)
def _plain(ciphertext: bytes) -> str:
    """Decrypted once per process and stored secret (a rotated secret is a new ciphertext)."""
    return decrypt(ciphertext)


@cache
def _credential_stmt() -> Executable:
    t = cast(Table, ServiceProvider.__table__).c
    return select(t.pc_tenant_id, t.pc_client_id, t.pc_client_secret_enc, t.pc_refresh_token_enc).where(
        t.id == bindparam("sp"))


def provider_of(session: Session, service_provider_id: str | None, customer_id: str | None) -> str | None:
    """The reseller acting for a request: its own id, else its customer's."""
    if service_provider_id:
        return service_provider_id
    customer = session.get(Customer, customer_id) if customer_id else None
    return customer.service_provider_id if customer else None
