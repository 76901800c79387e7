"""A reseller's Partner Center credential, decrypted for one step and never stored elsewhere."""
from __future__ import annotations

from functools import lru_cache

from sqlalchemy.orm import Session

from shared.db.models import Customer, ServiceProvider
from shared.microsoft.credentials import PartnerCredential
from shared.pipeline.outcomes import StepFailed
from shared.security import decrypt


def partner_credential(session: Session, service_provider_id: str | None) -> PartnerCredential:
    sp = session.get(ServiceProvider, service_provider_id) if service_provider_id else None
    if sp is None:
        raise StepFailed("service_provider_missing", "the request has no service provider")
    return PartnerCredential(tenant_id=sp.pc_tenant_id, client_id=sp.pc_client_id,
                             client_secret=_plain(sp.pc_client_secret_enc),
                             refresh_token=_plain(sp.pc_refresh_token_enc) if sp.pc_refresh_token_enc else None,
                             reseller=sp.name)


@lru_cache(maxsize=256)
def _plain(ciphertext: bytes) -> str:
    """Decrypted once per process and stored secret (a rotated secret is a new ciphertext)."""
    return decrypt(ciphertext)


def provider_of(session: Session, service_provider_id: str | None, customer_id: str | None) -> str | None:
    """The reseller acting for a request: its own id, else its customer's."""
    if service_provider_id:
        return service_provider_id
    customer = session.get(Customer, customer_id) if customer_id else None
    return customer.service_provider_id if customer else None
