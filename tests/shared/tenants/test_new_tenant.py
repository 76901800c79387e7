"""A new tenant: Partner Center's Create customer body in Microsoft's shape; its admin credentials kept
encrypted for one reader, never in the request's context, the step's notes or a log line."""
from __future__ import annotations

import json
import logging

from sqlalchemy import select

from shared.auth.principal import Principal
from shared.db.models import ProvisioningRequest, RequestSecret
from shared.requests import kinds
from shared.security import decrypt
from shared.tenants import new_tenant
from shared.tenants.steps import connect_tenant

SPEC = {"domain": "fabrikam", "company": "Fabrikam Ltd", "email": "it@fabrikam.example", "first_name": "Ada",
        "last_name": "Lovelace", "phone": "+44 20 7946 0000", "culture": "en-GB", "language": "en",
        "address": {"address_line1": "1 Road", "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}}
OPERATOR = Principal("00000000-0000-4000-8000-000000000001", "operator")
CUSTOMER_KEY = Principal("00000000-0000-4000-8000-000000000002", "customer", "c")


def test_the_create_customer_body_is_microsofts():
    assert new_tenant.partner_center_body(SPEC) == {
        "companyProfile": {"domain": "fabrikam.onmicrosoft.com"},
        "billingProfile": {
            "email": "it@fabrikam.example", "culture": "en-GB", "language": "en", "companyName": "Fabrikam Ltd",
            "firstName": "Ada", "lastName": "Lovelace",
            "defaultAddress": {"addressLine1": "1 Road", "city": "Leeds", "postalCode": "LS1 1AA", "country": "GB",
                               "firstName": "Ada", "lastName": "Lovelace", "phoneNumber": "+44 20 7946 0000"}}}
    # Given whole, the domain is not doubled.
    assert new_tenant.partner_center_body({**SPEC, "domain": "fabrikam.onmicrosoft.com"})["companyProfile"] == {
        "domain": "fabrikam.onmicrosoft.com"}


def test_the_admin_credentials_are_kept_encrypted_and_nowhere_else(world, db, caplog):
    customer = world.b.customer(world.provider, connected=False)
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=customer, params={"new_tenant": SPEC})
    password = world.ms.new_tenant_password
    with caplog.at_level(logging.DEBUG):
        outcome = connect_tenant(world.ctx(req, "connect_tenant"))
    assert world.ms.created_bodies == [new_tenant.partner_center_body(SPEC)]
    db.flush()
    row = db.scalar(select(RequestSecret).where(RequestSecret.request_id == req.id))
    assert row is not None and password.encode() not in row.secret_enc
    assert json.loads(decrypt(row.secret_enc)) == {"user_name": "admin@fabrikam.onmicrosoft.com",
                                                    "password": password}
    stored = db.get(ProvisioningRequest, req.id)
    assert stored.context["tenant_admin_user_name"] == "admin@fabrikam.onmicrosoft.com"
    for text in (json.dumps(stored.context), json.dumps(stored.params), str(outcome), caplog.text):
        assert password not in text
    # A redelivery does not create a second tenant, nor a second secret.
    connect_tenant(world.ctx(req, "connect_tenant"))
    assert world.ms.calls["create_customer"] == 1
    assert len(db.scalars(select(RequestSecret).where(RequestSecret.request_id == req.id)).all()) == 1


def test_the_password_is_taken_once_and_only_by_a_manager(world, db):
    customer = world.b.customer(world.provider, connected=False)
    req = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=customer, params={"new_tenant": SPEC})
    connect_tenant(world.ctx(req, "connect_tenant"))
    db.flush()
    assert new_tenant.tenant_result(req) == {
        "tenant_id": req.context["created_tenant_id"], "domain": "fabrikam.onmicrosoft.com", "created": True,
        "admin_user_name": "admin@fabrikam.onmicrosoft.com", "admin_password": None}
    assert new_tenant.take_admin_password(db, CUSTOMER_KEY, req.id) is None
    assert new_tenant.take_admin_password(db, OPERATOR, req.id) == world.ms.new_tenant_password
    assert new_tenant.take_admin_password(db, OPERATOR, req.id) is None
    assert db.scalar(select(RequestSecret).where(RequestSecret.request_id == req.id)) is None
