"""Graph users through plain httpx: Microsoft's shapes, validation errors, seats, mailboxes, GDAP."""
from __future__ import annotations

import time

from .emulator_world import BASIC_SKU_ID, STRONG_PASSWORD, World, new_user

ADD_BASIC = {"addLicenses": [{"skuId": BASIC_SKU_ID, "disabledPlans": []}], "removeLicenses": []}


def test_create_get_filter_select_update_delete(world: World) -> None:
    graph = world.graph()
    created = graph.post("/v1.0/users", json=new_user("ann@contoso.com", usageLocation="NL"))
    assert created.status_code == 201
    user = created.json()
    assert user["@odata.context"].endswith("/v1.0/$metadata#users/$entity")
    assert user["userPrincipalName"] == "ann@contoso.com" and "passwordProfile" not in user
    assert "assignedLicenses" not in user  # not among Graph's default properties

    by_upn = graph.get("/v1.0/users/ANN@contoso.com")
    assert by_upn.json()["id"] == user["id"]
    selected = graph.get(f"/v1.0/users/{user['id']}", params={"$select": "id,usageLocation,assignedLicenses"})
    assert set(selected.json()) == {"@odata.context", "id", "usageLocation", "assignedLicenses"}
    assert (selected.json()["usageLocation"], selected.json()["assignedLicenses"]) == ("NL", [])
    found = graph.get("/v1.0/users", params={"$filter": "userPrincipalName eq 'ann@contoso.com'"}).json()
    assert [u["id"] for u in found["value"]] == [user["id"]]
    absent = graph.get("/v1.0/users", params={"$filter": "userPrincipalName eq 'o''brien@contoso.com'"})
    assert absent.status_code == 200 and absent.json()["value"] == []

    assert graph.patch(f"/v1.0/users/{user['id']}", json={"userPrincipalName": "ann.b@contoso.com"}).status_code == 204
    assert graph.get("/v1.0/users/ann.b@contoso.com").status_code == 200
    assert graph.delete(f"/v1.0/users/{user['id']}").status_code == 204
    gone = graph.get(f"/v1.0/users/{user['id']}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "Request_ResourceNotFound"
    assert {"date", "request-id", "client-request-id"} <= gone.json()["error"]["innerError"].keys()


def test_paging_with_top_and_next_link(world: World) -> None:
    world.control().post(f"/_emulator/tenants/{world.tenant_id}/users:generate", json={"count": 25})
    graph = world.graph()
    page = graph.get("/v1.0/users", params={"$top": "10", "$select": "id"}).json()
    seen = [u["id"] for u in page["value"]]
    while "@odata.nextLink" in page:
        page = graph.get(page["@odata.nextLink"]).json()
        seen += [u["id"] for u in page["value"]]
    assert len(seen) == len(set(seen)) == 26
    assert graph.get("/v1.0/users", params={"$top": "1000"}).status_code == 400
    preferred = graph.get("/v1.0/users", headers={"Prefer": "odata.maxpagesize=5"}).json()
    assert len(preferred["value"]) == 5 and "@odata.nextLink" in preferred


def test_create_refusals_in_graph_shape(world: World) -> None:
    graph = world.graph()
    duplicate = graph.post("/v1.0/users", json=new_user("existing@contoso.com"))
    assert duplicate.status_code == 400
    error = duplicate.json()["error"]
    assert error["code"] == "Request_BadRequest"
    assert error["message"] == "Another object with the same value for property userPrincipalName already exists."
    assert error["details"][0]["code"] == "ObjectConflict"
    unverified = graph.post("/v1.0/users", json=new_user("bob@pending.example"))
    assert unverified.status_code == 400 and "verified domain names" in unverified.json()["error"]["message"]
    weak = graph.post("/v1.0/users", json={**new_user("bob@contoso.com"), "passwordProfile": {"password": "abc"}})
    assert "password complexity requirements" in weak.json()["error"]["message"]
    incomplete = graph.post("/v1.0/users", json={"userPrincipalName": "bob@contoso.com"})
    assert incomplete.status_code == 400
    clash = graph.post("/v1.0/users", json=new_user("carl@contoso.com"))
    taken = graph.patch(f"/v1.0/users/{clash.json()['id']}", json={"userPrincipalName": "existing@contoso.com"})
    assert taken.json()["error"]["details"][0]["code"] == "ObjectConflict"
    assert world.emulator.stats()["duplicate_create_attempts"] == 1


def test_licences_consume_seats_until_none_is_free(world: World) -> None:
    graph = world.graph()
    nowhere = graph.post("/v1.0/users", json=new_user("nowhere@contoso.com")).json()
    refused = graph.post(f"/v1.0/users/{nowhere['id']}/assignLicense", json=ADD_BASIC)
    assert refused.json()["error"]["message"] == (
        "License assignment cannot be done for user with invalid usage location.")
    ids = [graph.post("/v1.0/users", json=new_user(f"u{n}@contoso.com", usageLocation="DE")).json()["id"]
           for n in range(4)]
    for uid in ids[:3]:
        assert graph.post(f"/v1.0/users/{uid}/assignLicense", json=ADD_BASIC).status_code == 200
    again = graph.post(f"/v1.0/users/{ids[0]}/assignLicense", json=ADD_BASIC)
    assert again.status_code == 200  # already assigned: no second seat
    full = graph.post(f"/v1.0/users/{ids[3]}/assignLicense", json=ADD_BASIC)
    assert full.status_code == 400
    assert full.json()["error"]["message"].endswith("does not have any available licenses.")
    sku = graph.get("/v1.0/subscribedSkus").json()["value"][0]
    assert (sku["prepaidUnits"]["enabled"], sku["consumedUnits"]) == (3, 3)
    release = {"addLicenses": [], "removeLicenses": [BASIC_SKU_ID]}
    assert graph.post(f"/v1.0/users/{ids[0]}/assignLicense", json=release).status_code == 200
    assert graph.post(f"/v1.0/users/{ids[3]}/assignLicense", json=ADD_BASIC).status_code == 200
    missing = graph.post(f"/v1.0/users/{ids[3]}/assignLicense", json={"addLicenses": []})
    assert "removeLicenses" in missing.json()["error"]["message"]
    assert world.emulator.stats()["licence_assignments"] == 4


def test_mailbox_probe_follows_the_exchange_licence(world: World) -> None:
    graph = world.graph()
    user = graph.post("/v1.0/users", json=new_user("mail@contoso.com", usageLocation="FR")).json()
    before = graph.get(f"/v1.0/users/{user['id']}/mailboxSettings")
    assert before.status_code == 404 and before.json()["error"]["code"] == "MailboxNotEnabledForRESTAPI"
    graph.post(f"/v1.0/users/{user['id']}/assignLicense", json=ADD_BASIC)
    assert graph.get(f"/v1.0/users/{user['id']}/mailboxSettings").status_code == 200
    shown = graph.get(f"/v1.0/users/{user['id']}", params={"$select": "mail,proxyAddresses"}).json()
    assert shown["proxyAddresses"] == ["SMTP:mail@contoso.com"]


def test_domains_and_subscribed_skus_shapes(world: World) -> None:
    graph = world.graph()
    domains = {d["id"]: d for d in graph.get("/v1.0/domains").json()["value"]}
    assert domains["contoso.onmicrosoft.com"]["isInitial"] is True
    assert domains["contoso.com"]["isVerified"] is True and domains["pending.example"]["isVerified"] is False
    sku = graph.get("/v1.0/subscribedSkus").json()["value"][0]
    assert sku["skuId"] == BASIC_SKU_ID and sku["skuPartNumber"] == "O365_BUSINESS_ESSENTIALS"
    plans = {p["servicePlanName"]: p["servicePlanId"] for p in sku["servicePlans"]}
    assert plans["EXCHANGE_S_STANDARD"] == "9aaf7827-d63c-4b61-89c3-182f06f82e5c"


def test_gdap_missing_or_expired_forbids_customer_calls(world: World) -> None:
    partner_graph = world.graph(world.partner_tenant)
    listed = partner_graph.get("/v1.0/tenantRelationships/delegatedAdminRelationships",
                               params={"$filter": f"customer/tenantId eq '{world.tenant_id}'"}).json()["value"]
    assert [r["status"] for r in listed] == ["active"]
    assert listed[0]["customer"]["tenantId"] == world.tenant_id
    other = world.add_tenant(company_name="Fabrikam", initial_domain="fabrikam.onmicrosoft.com", gdap="none",
                             consented_apps=[world.client_id])
    graph = world.graph(other["tenant_id"])
    denied = graph.get("/v1.0/users")
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    none = partner_graph.get("/v1.0/tenantRelationships/delegatedAdminRelationships",
                             params={"$filter": f"customer/tenantId eq '{other['tenant_id']}'"}).json()
    assert none["value"] == []
    world.control().patch(f"/_emulator/tenants/{world.tenant_id}", json={"gdap": "expired"})
    assert world.graph().get("/v1.0/domains").status_code == 403
    expired = partner_graph.get("/v1.0/tenantRelationships/delegatedAdminRelationships").json()["value"]
    assert [r["status"] for r in expired] == ["expired"]


def test_member_of_lists_directory_roles_in_graphs_shape(world: World) -> None:
    control = world.control()
    seeded = control.patch(f"/_emulator/tenants/{world.tenant_id}", json={"users": [
        {"userPrincipalName": "admin@contoso.com", "directory_roles": ["Global Administrator"]}]})
    assert seeded.status_code == 200, seeded.text
    graph = world.graph()
    admin = graph.get("/v1.0/users/admin@contoso.com").json()
    answer = graph.get(f"/v1.0/users/{admin['id']}/memberOf")
    assert answer.status_code == 200
    body = answer.json()
    assert body["@odata.context"].endswith("/v1.0/$metadata#directoryObjects")
    [role] = body["value"]
    assert role["@odata.type"] == "#microsoft.graph.directoryRole"
    assert (role["displayName"], role["roleTemplateId"]) == ("Global Administrator",
                                                             "62e90394-69f5-4237-9190-012177145e10")
    assert set(role) == {"@odata.type", "id", "deletedDateTime", "description", "displayName", "roleTemplateId"}
    assert graph.get("/v1.0/users/existing@contoso.com/memberOf").json()["value"] == []
    # A role given (or taken) in Entra directly, by template id.
    changed = control.patch(f"/_emulator/tenants/{world.tenant_id}/users/existing@contoso.com",
                            json={"directory_roles": ["fe930be7-5e62-47db-91af-98c3a49a38b1"]})
    assert changed.json()["directory_roles"] == ["fe930be7-5e62-47db-91af-98c3a49a38b1"]
    assert [r["displayName"] for r in graph.get("/v1.0/users/existing@contoso.com/memberOf").json()["value"]] == [
        "User Administrator"]
    unknown = control.patch(f"/_emulator/tenants/{world.tenant_id}/users/existing@contoso.com",
                            json={"directory_roles": ["Emperor"]})
    assert unknown.status_code == 400
    assert graph.get("/v1.0/users/nobody@contoso.com/memberOf").status_code == 404


def test_created_date_time_re_enabling_and_the_last_password_change(world: World) -> None:
    graph = world.graph()
    user = graph.post("/v1.0/users", json=new_user("dan@contoso.com", usageLocation="NL")).json()
    read = graph.get(f"/v1.0/users/{user['id']}", params={"$select": "id,createdDateTime,accountEnabled"}).json()
    assert read["createdDateTime"].endswith("Z") and read["accountEnabled"] is True
    enabled = lambda: graph.get(f"/v1.0/users/{user['id']}", params={"$select": "accountEnabled"}).json()  # noqa: E731
    assert graph.patch(f"/v1.0/users/{user['id']}", json={"accountEnabled": False}).status_code == 204
    assert enabled()["accountEnabled"] is False
    assert graph.patch(f"/v1.0/users/{user['id']}", json={"accountEnabled": True}).status_code == 204
    assert enabled()["accountEnabled"] is True
    changed = lambda: graph.get(f"/v1.0/users/{user['id']}",  # noqa: E731
                                params={"$select": "lastPasswordChangeDateTime"}).json()["lastPasswordChangeDateTime"]
    first = changed()
    assert first == read["createdDateTime"]
    time.sleep(1.1)  # Graph's timestamps count whole seconds here
    assert graph.patch(f"/v1.0/users/{user['id']}", json={"displayName": "Dan"}).status_code == 204
    assert changed() == first
    assert graph.patch(f"/v1.0/users/{user['id']}", json={"passwordProfile": {
        "password": STRONG_PASSWORD + "2", "forceChangePasswordNextSignIn": True}}).status_code == 204
    assert changed() > first


def test_every_exchange_plan_with_a_mailbox_gives_one(world: World) -> None:
    control = world.control()
    control.patch(f"/_emulator/tenants/{world.tenant_id}", json={"skus": [
        {"sku_part_number": "EXCHANGE_S_ESSENTIALS", "units": 1}, {"sku_part_number": "EXCHANGEDESKLESS", "units": 1}]})
    graph = world.graph()
    skus = {s["skuPartNumber"]: s for s in graph.get("/v1.0/subscribedSkus").json()["value"]}
    for part, plan in (("EXCHANGE_S_ESSENTIALS", "1126bef5-da20-4f07-b45e-ad25d2581aa8"),
                       ("EXCHANGEDESKLESS", "4a82b400-a79f-41a4-b4e2-e94f5787b113")):
        assert [p["servicePlanId"] for p in skus[part]["servicePlans"]] == [plan]
        user = graph.post("/v1.0/users", json=new_user(f"{part.lower()}@contoso.com", usageLocation="NL")).json()
        graph.post(f"/v1.0/users/{user['id']}/assignLicense", json={
            "addLicenses": [{"skuId": skus[part]["skuId"], "disabledPlans": []}], "removeLicenses": []})
        state = control.get(f"/_emulator/tenants/{world.tenant_id}").json()
        assert next(u for u in state["users"] if u["id"] == user["id"])["mailbox"] in ("provisioning", "ready")
