"""read_agreement shows the MCA; check_mca blocks plans until it is recorded."""
from __future__ import annotations

from sqlalchemy import select

from shared.agreements.steps import check_mca, read_agreement
from shared.db.models import Agreement
from shared.pipeline.outcomes import Blocked, Done
from shared.requests import kinds


def test_read_agreement_records_the_status_without_blocking(world, db):
    world.tenant.mca.clear()
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=world.customer)
    assert read_agreement(world.ctx(req, "read_agreement")).note == "MCA not signed yet"
    assert db.scalar(select(Agreement.signed).where(Agreement.customer_id == world.customer.id)) is False


def test_check_mca_blocks_until_recorded(world):
    world.tenant.mca.clear()
    req = world.b.request(kinds.CUSTOMER_MICROSOFT_ONLINE, customer=world.customer)
    outcome = check_mca(world.ctx(req, "check_mca"))
    assert isinstance(outcome, Blocked) and outcome.reason == "mca_not_signed"
    world.tenant.mca.append({"type": "MicrosoftCustomerAgreement", "dateAgreed": "2025-03-01"})
    assert isinstance(check_mca(world.ctx(req, "check_mca")), Done)


def test_the_primary_contact_is_stored_in_the_engines_shape_not_partner_centers(world, db):
    world.tenant.mca[:] = [{"type": "MicrosoftCustomerAgreement", "dateAgreed": "2025-03-01",
                            "primaryContact": {"firstName": "Ada", "lastName": "Lovelace",
                                               "email": "ada@contoso.com", "phoneNumber": "+44 20 7946 0000"}}]
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=world.customer)
    read_agreement(world.ctx(req, "read_agreement"))
    stored = db.scalar(select(Agreement.primary_contact).where(Agreement.customer_id == world.customer.id))
    # What GET /v1/customers/{c} presents: Partner Center's camelCase there answered 500.
    assert stored == {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@contoso.com",
                      "phone": "+44 20 7946 0000"}
