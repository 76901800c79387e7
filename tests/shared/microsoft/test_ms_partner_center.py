"""PartnerCenterClient: wire shapes of customers, domains, agreements, SKUs, subscriptions."""
from __future__ import annotations

import json

import httpx
import pytest

from shared.microsoft import errors as e
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from shared.microsoft.partner_center import PartnerCenterClient
from tests.shared.microsoft.ms_fakes import CUSTOMER, PARTNER, PC, FakeMicrosoft, body_of

TEMPLATE = "117a77b0-9360-443b-8795-c6dedc750cf9"
AGREEMENTS = httpx.Response(200, json={"totalCount": 1, "items": [
    {"templateId": TEMPLATE, "agreementType": "MicrosoftCustomerAgreement", "agreementLink": "https://x"}]})


@pytest.fixture
def pc(ms: MicrosoftClients, credential: PartnerCredential) -> PartnerCenterClient:
    return ms.partner_center(credential)


def collection(items: list[dict]) -> httpx.Response:
    return httpx.Response(200, json={"totalCount": len(items), "items": items, "links": {},
                                     "attributes": {"objectType": "Collection"}})


def last(fake: FakeMicrosoft) -> httpx.Request:
    return fake.api_requests()[-1]


def test_search_customers(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/customers?", collection([{"id": CUSTOMER}]))
    assert pc.search_customers("Domain", "contoso", size=10) == [{"id": CUSTOMER}]
    params = last(fake).url.params
    assert params["size"] == "10"
    assert json.loads(params["filter"]) == {"Field": "Domain", "Value": "contoso", "Operator": "starts_with"}
    with pytest.raises(ValueError):
        pc.search_customers("Email", "x")  # type: ignore[arg-type]


def test_token_is_for_the_partner_tenant_and_pc_scope(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/customers/{CUSTOMER}", httpx.Response(200, json={"id": CUSTOMER}))
    assert pc.get_customer(CUSTOMER) == {"id": CUSTOMER}
    assert [(f["_tenant"], f["scope"]) for f in fake.token_requests] == [
        (PARTNER, "https://api.partnercenter.microsoft.com/.default")]


def test_get_customer_not_found(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/customers/", httpx.Response(404, json={"code": 1000, "description": "Not found"}))
    with pytest.raises(e.NotFound):
        pc.get_customer("missing")


def test_create_customer(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", f"{PC}/customers", httpx.Response(201, json={"id": "new", "userCredentials": {}}))
    body = {"companyProfile": {"domain": "newco"}, "billingProfile": {"email": "a@b.c"}}
    assert pc.create_customer(body)["id"] == "new"
    assert body_of(last(fake)) == body


def test_create_customer_retry_reuses_the_request_id(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", f"{PC}/customers", [httpx.ReadTimeout("slow"), httpx.Response(201, json={"id": "new"})])
    pc.create_customer({"companyProfile": {"domain": "newco"}})
    first, second = fake.api_requests()
    assert first.headers["MS-RequestId"] == second.headers["MS-RequestId"]


def test_domain_exists(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("HEAD", f"{PC}/domains/taken.onmicrosoft.com", httpx.Response(200))
    fake.on("HEAD", f"{PC}/domains/free.onmicrosoft.com", httpx.Response(404))
    assert pc.domain_exists("taken.onmicrosoft.com") is True
    assert pc.domain_exists("free.onmicrosoft.com") is False


def test_agreements(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/agreements", AGREEMENTS)
    assert pc.mca_template_id() == TEMPLATE
    assert last(fake).url.params["agreementType"] == "MicrosoftCustomerAgreement"
    fake.on("GET", f"{PC}/customers/{CUSTOMER}/agreements", collection([
        {"templateId": TEMPLATE, "type": "MicrosoftCustomerAgreement", "dateAgreed": "2024-01-01T00:00:00Z",
         "primaryContact": {"email": "x@y.z"}}]))
    assert pc.get_agreements(CUSTOMER)[0]["dateAgreed"] == "2024-01-01T00:00:00Z"
    fake.on("GET", f"{PC}/customers/{CUSTOMER}/agreements", collection([]))
    assert pc.get_agreements(CUSTOMER) == []


def test_record_agreement(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/agreements", AGREEMENTS)
    fake.on("POST", f"{PC}/customers/{CUSTOMER}/agreements", httpx.Response(201, json={"templateId": TEMPLATE}))
    contact = {"firstName": "A", "lastName": "B", "email": "a@b.c", "phoneNumber": "1"}
    assert pc.record_agreement(CUSTOMER, contact, "2024-05-01T00:00:00Z") == {"templateId": TEMPLATE}
    assert body_of(last(fake)) == {"primaryContact": contact, "templateId": TEMPLATE,
                                   "dateAgreed": "2024-05-01T00:00:00Z", "type": "MicrosoftCustomerAgreement"}
    pc.record_agreement(CUSTOMER, contact)
    assert body_of(last(fake))["dateAgreed"].endswith("Z")


def test_record_agreement_twice_is_done(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/agreements", AGREEMENTS)
    fake.on("POST", f"{PC}/customers/{CUSTOMER}/agreements", httpx.Response(400, json={
        "code": 600061, "description": "A partner confirmed agreement already exists", "data": [], "source": "PC"}))
    assert pc.record_agreement(CUSTOMER, {"email": "a@b.c"}) is None


def test_skus_and_subscriptions(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/customers/{CUSTOMER}/subscribedskus", collection([{"availableUnits": 3}]))
    fake.on("GET", f"{PC}/customers/{CUSTOMER}/subscriptions", collection([{"id": "s", "quantity": 5}]))
    assert pc.subscribed_skus(CUSTOMER) == [{"availableUnits": 3}]
    assert pc.subscriptions(CUSTOMER) == [{"id": "s", "quantity": 5}]


def test_check_connection(pc: PartnerCenterClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{PC}/agreements", AGREEMENTS)
    assert pc.check_connection() is None
    fake.token_reply = lambda form: httpx.Response(400, json={
        "error": "unauthorized_client", "error_description": "AADSTS700016: Application not found",
        "error_codes": [700016]})
    other = PartnerCredential("44444444-4444-4444-4444-444444444444", "wrong-app", "wrong-secret")
    with pytest.raises(e.AuthFailed) as info:
        PartnerCenterClient(pc._caller, other).check_connection()
    assert info.value.code == "AADSTS700016"
