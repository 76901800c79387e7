"""Partner Center v1 through plain httpx: search, customers, domains, agreements, SKUs, subscriptions."""
from __future__ import annotations

import json

import httpx
import pytest

from .emulator_world import BASIC, World

MCA = "117a77b0-9360-443b-8795-c6dedc750cf9"
CONTACT = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.com", "phoneNumber": "+3112345"}


def test_customer_search_by_domain_and_company_name(world: World) -> None:
    world.add_tenant(company_name="Contoso Labs", initial_domain="contosolabs.onmicrosoft.com")
    world.add_tenant(company_name="Fabrikam", initial_domain="fabrikam.onmicrosoft.com")
    pc = world.partner_center()
    by_domain = pc.get("/v1/customers", params={"size": 10, "filter": json.dumps(
        {"Field": "Domain", "Value": "CONTOSO", "Operator": "starts_with"})}).json()
    assert by_domain["attributes"] == {"objectType": "Collection"}
    assert sorted(c["companyProfile"]["domain"] for c in by_domain["items"]) == [
        "contoso.onmicrosoft.com", "contosolabs.onmicrosoft.com"]
    assert by_domain["totalCount"] == 2
    by_name = pc.get("/v1/customers", params={"filter": json.dumps(
        {"Field": "CompanyName", "Value": "fab", "Operator": "starts_with"})}).json()
    assert [c["companyProfile"]["companyName"] for c in by_name["items"]] == ["Fabrikam"]
    assert by_name["items"][0]["id"] == by_name["items"][0]["companyProfile"]["tenantId"]
    bad = pc.get("/v1/customers", params={"filter": json.dumps({"Field": "Domain", "Value": "x", "Operator": "eq"})})
    assert bad.status_code == 400
    one = pc.get("/v1/customers", params={"size": 1}).json()
    assert len(one["items"]) == 1 and one["links"]["next"]["headers"][0]["key"] == "MS-ContinuationToken"


def test_get_customer_and_unknown_customer(world: World) -> None:
    pc = world.partner_center()
    customer = pc.get(f"/v1/customers/{world.tenant_id}").json()
    assert customer["relationshipToPartner"] == "reseller"
    missing = pc.get("/v1/customers/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["code"] == 1000
    assert {"description", "data", "source"} <= missing.json().keys()


ADDRESS = {"firstName": "Ada", "lastName": "Lovelace", "addressLine1": "1 Way", "city": "Redmond", "state": "WA",
           "postalCode": "98052", "country": "US", "phoneNumber": "4255550101"}


def _new_customer(domain: str, **address: object) -> dict[str, object]:
    return {"companyProfile": {"domain": domain},
            "billingProfile": {"email": "it@newco.example", "culture": "en-US", "language": "en",
                               "companyName": "NewCo", "defaultAddress": {**ADDRESS, **address}}}


def test_create_customer_makes_a_tenant_that_signs_in(world: World) -> None:
    pc = world.partner_center()
    assert pc.head("/v1/domains/newco.onmicrosoft.com").status_code == 404
    created = pc.post("/v1/customers", json=_new_customer("newco.onmicrosoft.com"))
    assert created.status_code == 201
    body = created.json()
    assert body["companyProfile"]["tenantId"] == body["id"]
    assert body["companyProfile"]["domain"] == "newco.onmicrosoft.com"
    assert body["billingProfile"]["defaultAddress"]["addressLine1"] == "1 Way"
    assert body["userCredentials"]["userName"] == "admin" and body["userCredentials"]["password"]
    assert pc.head("/v1/domains/newco.onmicrosoft.com").status_code == 200
    tenant = world.emulator.tenant(body["id"])
    assert (tenant["gdap"], tenant["mca_signed"]) == ("active", False)
    # A new tenant, like any other, gives the partner's app tokens only once the app is consented there.
    with pytest.raises(httpx.HTTPStatusError):
        world.token(body["id"])
    grants = [{"enterpriseApplicationId": "00000003-0000-0000-c000-000000000000", "scope": "Directory.Read.All"}]
    consent = pc.post(f"/v1/customers/{body['id']}/applicationconsents",
                      json={"applicationId": world.client_id, "applicationGrants": grants})
    assert consent.status_code == 201
    assert world.graph(body["id"]).get("/v1.0/domains").json()["value"][0]["id"] == "newco.onmicrosoft.com"
    taken = pc.post("/v1/customers", json=_new_customer("newco.onmicrosoft.com"))
    assert taken.status_code == 409 and taken.json()["code"] == 1002


def test_create_customer_checks_the_body_as_microsoft_does(world: World) -> None:
    pc = world.partner_center()
    refused = {
        "a bare prefix": _new_customer("fabrikam"),
        "no first name": _new_customer("fab1.onmicrosoft.com", firstName=""),
        "no street": _new_customer("fab2.onmicrosoft.com", addressLine1=None),
        "a country name": _new_customer("fab3.onmicrosoft.com", country="Netherlands"),
        "snake_case address": {**_new_customer("fab4.onmicrosoft.com"), "billingProfile": {
            "email": "a@b.c", "culture": "en-US", "language": "en", "companyName": "Fab",
            "defaultAddress": {"first_name": "A", "last_name": "B", "address_line1": "1 Road", "city": "Leeds",
                               "postal_code": "LS1", "country": "GB"}}},
    }
    for why, body in refused.items():
        r = pc.post("/v1/customers", json=body)
        assert r.status_code == 400 and r.json()["code"] == 2000, (why, r.text)
    # Microsoft's own sample sends PascalCase: Partner Center binds names case-insensitively.
    pascal = pc.post("/v1/customers", json={
        "CompanyProfile": {"Domain": "fab5.onmicrosoft.com"},
        "BillingProfile": {"Culture": "EN-US", "Email": "a@b.c", "Language": "en", "CompanyName": "Fab",
                           "DefaultAddress": {"FirstName": "A", "LastName": "B", "AddressLine1": "1 Road",
                                              "City": "Leeds", "PostalCode": "LS1", "Country": "GB"}}})
    assert pascal.status_code == 201, pascal.text
    assert pascal.json()["billingProfile"]["defaultAddress"]["postalCode"] == "LS1"


def test_agreement_recorded_once_then_600061(world: World) -> None:
    pc = world.partner_center()
    templates = pc.get("/v1/agreements", params={"agreementType": "MicrosoftCustomerAgreement"}).json()
    assert [t["templateId"] for t in templates["items"]] == [MCA]
    path = f"/v1/customers/{world.tenant_id}/agreements"
    assert pc.get(path, params={"agreementType": "MicrosoftCustomerAgreement"}).json()["items"] == []
    record = {"primaryContact": CONTACT, "templateId": MCA, "dateAgreed": "2024-05-01T00:00:00Z",
              "type": "MicrosoftCustomerAgreement"}
    first = pc.post(path, json=record)
    assert first.status_code == 201 and first.json()["primaryContact"]["email"] == "ada@contoso.com"
    listed = pc.get(path, params={"agreementType": "MicrosoftCustomerAgreement"}).json()["items"]
    assert listed[0]["dateAgreed"] == "2024-05-01T00:00:00Z"
    second = pc.post(path, json=record)
    assert second.status_code == 409 and second.json()["code"] == 600061
    assert world.emulator.tenant(world.tenant_id)["mca_signed"] is True


def test_subscribed_skus_and_subscriptions(world: World) -> None:
    pc = world.partner_center()
    skus = pc.get(f"/v1/customers/{world.tenant_id}/subscribedskus").json()["items"]
    assert skus[0]["productSku"]["skuPartNumber"] == "O365_BUSINESS_ESSENTIALS"
    assert (skus[0]["totalUnits"], skus[0]["consumedUnits"], skus[0]["availableUnits"]) == (3, 0, 3)
    subscriptions = pc.get(f"/v1/customers/{world.tenant_id}/subscriptions").json()["items"]
    assert subscriptions[0]["quantity"] == 3 and subscriptions[0]["status"] == "active"


def test_subscribed_skus_count_as_graph_does_and_need_no_gdap(world: World) -> None:
    graph = world.graph()
    existing = graph.get("/v1.0/users/existing@contoso.com").json()
    [graph_sku] = graph.get("/v1.0/subscribedSkus").json()["value"]
    assert graph.post(f"/v1.0/users/{existing['id']}/assignLicense", json={
        "addLicenses": [{"skuId": graph_sku["skuId"], "disabledPlans": []}], "removeLicenses": []}).status_code == 200
    pc = world.partner_center()
    [sku] = pc.get(f"/v1/customers/{world.tenant_id}/subscribedskus").json()["items"]
    # Microsoft's SubscribedSku: productSku.id is Graph's skuId, service plans carry serviceName.
    assert sku["productSku"]["id"] == graph_sku["skuId"]
    assert (sku["activeUnits"], sku["consumedUnits"], sku["availableUnits"]) == (3, 1, 2)
    assert {p["serviceName"] for p in sku["servicePlans"]} == {p["servicePlanName"] for p in graph_sku["servicePlans"]}
    assert sku["attributes"] == {"objectType": "SubscribedSku"}
    no_gdap = world.add_tenant(company_name="Fabrikam", initial_domain="fabrikam.onmicrosoft.com",
                               skus=[{"sku_part_number": BASIC, "units": 2}], gdap="none",
                               consented_apps=[world.client_id])
    assert world.graph(no_gdap["tenant_id"]).get("/v1.0/subscribedSkus").status_code == 403
    items = pc.get(f"/v1/customers/{no_gdap['tenant_id']}/subscribedskus").json()["items"]
    assert [(i["productSku"]["skuPartNumber"], i["activeUnits"]) for i in items] == [(BASIC, 2)]
