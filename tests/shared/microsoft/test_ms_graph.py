"""GraphClient: the wire shape of each operation, paging, delta rounds, mailbox probe, GDAP."""
from __future__ import annotations

import httpx
import pytest

from shared.microsoft import errors as e
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from shared.microsoft.graph import GraphClient
from tests.shared.microsoft.ms_fakes import CUSTOMER, GRAPH, PARTNER, FakeMicrosoft, body_of, close_key, graph_error


@pytest.fixture
def graph(ms: MicrosoftClients, credential: PartnerCredential) -> GraphClient:
    return ms.graph(credential, CUSTOMER)


def last(fake: FakeMicrosoft) -> httpx.Request:
    return fake.api_requests()[-1]


def test_find_user_by_upn_doubles_quotes(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/users?", httpx.Response(200, json={"value": [{"id": "u1"}]}))
    assert graph.find_user_by_upn("o'brien@contoso.com") == {"id": "u1"}
    assert last(fake).url.params["$filter"] == "userPrincipalName eq 'o''brien@contoso.com'"
    fake.on("GET", f"{GRAPH}/users?", httpx.Response(200, json={"value": []}))
    assert graph.find_user_by_upn("nobody@contoso.com") is None


def test_get_user_encodes_the_path_and_selects(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/users/", httpx.Response(200, json={"id": "g1"}))
    graph.get_user("guest_x.com#EXT#@contoso.onmicrosoft.com", select=["id", "assignedLicenses"])
    request = last(fake)
    assert request.url.raw_path.startswith(b"/v1.0/users/guest_x.com%23EXT%23@contoso.onmicrosoft.com?")
    assert request.url.params["$select"] == "id,assignedLicenses"
    fake.on("GET", f"{GRAPH}/users/", graph_error(404, "Request_ResourceNotFound", "not there"))
    with pytest.raises(e.NotFound):
        graph.get_user("u404")


def test_create_update_delete(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", f"{GRAPH}/users", httpx.Response(201, json={"id": "new"}))
    fake.on("PATCH", f"{GRAPH}/users/new", httpx.Response(204))
    fake.on("DELETE", f"{GRAPH}/users/new", httpx.Response(204))
    body = {"accountEnabled": True, "displayName": "A", "mailNickname": "a", "userPrincipalName": "a@c.com",
            "passwordProfile": {"password": "Xx1!secret", "forceChangePasswordNextSignIn": True}}
    assert graph.create_user(body) == {"id": "new"}
    assert body_of(last(fake)) == body
    assert graph.update_user("new", {"usageLocation": "NL"}) is None
    assert (last(fake).method, body_of(last(fake))) == ("PATCH", {"usageLocation": "NL"})
    assert graph.delete_user("new") is None
    assert last(fake).method == "DELETE"


def test_create_user_errors(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", f"{GRAPH}/users", graph_error(
        400, "Request_BadRequest", "The domain portion of the userPrincipalName property is invalid. You must use "
        "one of the verified domain names in your organization."))
    with pytest.raises(e.UnverifiedDomain):
        graph.create_user({"userPrincipalName": "a@unverified.com"})
    assert len(fake.api_requests()) == 1


def test_assign_licences_always_sends_both_arrays(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", f"{GRAPH}/users/u1/assignLicense", httpx.Response(200, json={"id": "u1"}))
    graph.assign_licences("u1", add=[{"skuId": "sku", "disabledPlans": []}], remove=[])
    assert body_of(last(fake)) == {"addLicenses": [{"skuId": "sku", "disabledPlans": []}], "removeLicenses": []}
    graph.assign_licences("u1", add=[], remove=["sku"])
    assert body_of(last(fake)) == {"addLicenses": [], "removeLicenses": ["sku"]}
    fake.on("POST", f"{GRAPH}/users/u1/assignLicense", graph_error(
        400, "Request_BadRequest", "License assignment failed because service plans ... does not have any "
        "available licenses."))
    with pytest.raises(e.NoFreeLicences):
        graph.assign_licences("u1", add=[{"skuId": "sku", "disabledPlans": []}], remove=[])
    fake.on("POST", f"{GRAPH}/users/u1/assignLicense", graph_error(
        400, "Request_BadRequest", "License assignment cannot be done for user with invalid usage location."))
    with pytest.raises(e.InvalidUsageLocation):
        graph.assign_licences("u1", add=[{"skuId": "sku", "disabledPlans": []}], remove=[])


def test_mailbox_ready(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/users/u1/mailboxSettings", graph_error(
        404, "MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted on-premise."))
    assert graph.mailbox_ready("u1") is False
    fake.on("GET", f"{GRAPH}/users/u1/mailboxSettings", httpx.Response(200, json={"timeZone": "UTC"}))
    assert graph.mailbox_ready("u1") is True
    fake.on("GET", f"{GRAPH}/users/u2/mailboxSettings", graph_error(404, "Request_ResourceNotFound", "no user"))
    with pytest.raises(e.NotFound):
        graph.mailbox_ready("u2")


def test_domains_and_skus_follow_next_links(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/domains", [
        httpx.Response(200, json={"value": [{"id": "a.com"}], "@odata.nextLink": f"{GRAPH}/domains?$skiptoken=2"}),
        httpx.Response(200, json={"value": [{"id": "b.com"}]}),
    ])
    assert [d["id"] for d in graph.domains()] == ["a.com", "b.com"]
    fake.on("GET", f"{GRAPH}/subscribedSkus", httpx.Response(200, json={"value": [{"skuId": "s"}]}))
    assert graph.subscribed_skus() == [{"skuId": "s"}]


def test_user_pages_stream(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/users", [
        httpx.Response(200, json={"value": [{"id": "1"}], "@odata.nextLink": f"{GRAPH}/users?$skiptoken=x"}),
        httpx.Response(200, json={"value": [{"id": "2"}]}),
    ])
    pages = graph.iter_user_pages(select=["id"], top=5000)
    assert fake.api_requests() == []  # nothing before the first page is asked for
    assert next(pages) == [{"id": "1"}]
    assert len(fake.api_requests()) == 1
    first = fake.api_requests()[0]
    assert (first.url.params["$top"], first.url.params["$select"]) == ("999", "id")
    assert list(pages) == [[{"id": "2"}]]
    assert str(fake.api_requests()[1].url) == f"{GRAPH}/users?$skiptoken=x"


def test_next_link_to_another_host_is_refused(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/users", httpx.Response(200, json={
        "value": [], "@odata.nextLink": "https://evil.example/v1.0/users?$skiptoken=x"}))
    with pytest.raises(e.MicrosoftError, match="another host"):
        list(graph.iter_user_pages())
    assert len(fake.api_requests()) == 1


def test_users_delta_round(graph: GraphClient, fake: FakeMicrosoft) -> None:
    delta = f"{GRAPH}/users/delta?$deltatoken=abc"
    fake.on("GET", f"{GRAPH}/users/delta", [
        httpx.Response(200, json={"value": [{"id": "1"}], "@odata.nextLink": f"{GRAPH}/users/delta?$skiptoken=p2"}),
        httpx.Response(200, json={"value": [{"id": "2", "@removed": {"reason": "changed"}}],
                                  "@odata.deltaLink": delta}),
    ])
    pages = graph.users_delta(select=["id", "userPrincipalName"])
    assert pages.delta_link is None
    assert [p for p in pages] == [[{"id": "1"}], [{"id": "2", "@removed": {"reason": "changed"}}]]
    assert pages.delta_link == delta
    assert fake.api_requests()[0].url.params["$select"] == "id,userPrincipalName"

    fake.on("GET", f"{GRAPH}/users/delta", httpx.Response(200, json={"value": [], "@odata.deltaLink": delta}))
    again = graph.users_delta(delta)
    assert list(again) == [[]] and again.delta_link == delta
    assert str(last(fake).url) == delta


def test_users_delta_expired(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/users/delta", graph_error(
        400, "syncStateNotFound", "The sync state generation is not found. The delta token is expired"))
    with pytest.raises(e.DeltaTokenExpired):
        list(graph.users_delta(f"{GRAPH}/users/delta?$deltatoken=old"))
    fake.on("GET", f"{GRAPH}/users/delta", graph_error(410, "resyncRequired", "Resync required"))
    with pytest.raises(e.DeltaTokenExpired):
        list(graph.users_delta(f"{GRAPH}/users/delta?$deltatoken=old"))


def test_gdap_is_read_with_a_partner_tenant_token(graph: GraphClient, fake: FakeMicrosoft,
                                                  ms: MicrosoftClients) -> None:
    fake.on("GET", f"{GRAPH}/tenantRelationships/delegatedAdminRelationships", httpx.Response(200, json={
        "value": [{"id": "r1", "status": "active", "customer": {"tenantId": CUSTOMER}}]}))
    assert graph.gdap_relationships(CUSTOMER)[0]["status"] == "active"
    assert last(fake).url.params["$filter"] == f"customer/tenantId eq '{CUSTOMER}'"
    assert [f["_tenant"] for f in fake.token_requests] == [PARTNER]
    assert last(fake).headers["Authorization"] == f"Bearer {fake.issued[0]}"
    # throttling follows the tenant the call is made in
    close_key(ms.limiter, f"graph:{PARTNER}", 600)
    with pytest.raises(e.Throttled):
        graph.gdap_relationships(CUSTOMER)


def test_graph_calls_carry_token_for_the_customer(graph: GraphClient, fake: FakeMicrosoft) -> None:
    fake.on("GET", f"{GRAPH}/domains", httpx.Response(200, json={"value": []}))
    graph.domains()
    request = last(fake)
    assert request.headers["Authorization"] == f"Bearer {fake.issued[0]}"
    assert fake.token_requests[0]["_tenant"] == CUSTOMER
    assert fake.token_requests[0]["scope"] == "https://graph.microsoft.com/.default"
    assert request.headers["Accept"] == "application/json"
    assert len(request.headers["client-request-id"]) == 36


def test_member_of_follows_pages_and_keeps_the_odata_types(graph: GraphClient, fake: FakeMicrosoft) -> None:
    role = {"@odata.type": "#microsoft.graph.directoryRole", "id": "r1", "displayName": "Global Administrator",
            "roleTemplateId": "62e90394-69f5-4237-9190-012177145e10"}
    group = {"@odata.type": "#microsoft.graph.group", "id": "g1", "displayName": "All Users"}
    fake.on("GET", f"{GRAPH}/users/u1/memberOf", httpx.Response(200, json={
        "value": [group], "@odata.nextLink": f"{GRAPH}/users/u1/memberOf?page=2"}))
    fake.on("GET", f"{GRAPH}/users/u1/memberOf?page=2", httpx.Response(200, json={"value": [role]}))  # matched first
    assert graph.member_of("u1") == [group, role]
    assert fake.api_requests()[0].url.path == "/v1.0/users/u1/memberOf"
