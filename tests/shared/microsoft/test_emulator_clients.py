"""Every client operation once against the emulator: real TLS, msal sign-in, Microsoft's wire shapes."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.microsoft import errors as e
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from tests.shared.microsoft.ms_emulator import BASIC, PARTNER_TENANT, USERS, Seeded, seed, settings_for

testing = pytest.importorskip("emulator.testing")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
PASSWORD = "Str0ng!pass-for-tests"


@pytest.fixture(scope="module")
def emulator() -> Iterator[testing.RunningEmulator]:
    with testing.running_emulator() as running:
        yield running


@pytest.fixture
def world(emulator: testing.RunningEmulator) -> Seeded:
    return seed(emulator)


@pytest.fixture
def ms(world: Seeded) -> Iterator[MicrosoftClients]:
    clients = MicrosoftClients(settings_for(world))
    yield clients
    clients.close()


def test_partner_center(ms: MicrosoftClients, world: Seeded) -> None:
    pc = ms.partner_center(world.credential)
    pc.check_connection()
    found = pc.search_customers("Domain", "CONTOSO")
    assert [c["id"] for c in found] == [world.tenant_id]
    assert pc.search_customers("CompanyName", "nobody") == []
    assert pc.get_customer(world.tenant_id)["companyProfile"]["tenantId"] == world.tenant_id
    with pytest.raises(e.NotFound):
        pc.get_customer("00000000-0000-0000-0000-000000000000")
    assert pc.domain_exists("contoso.onmicrosoft.com") is True
    assert pc.domain_exists("surelyfree12345.onmicrosoft.com") is False
    assert pc.mca_template_id() == "117a77b0-9360-443b-8795-c6dedc750cf9"
    assert pc.get_agreements(world.tenant_id) == []
    contact = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.com", "phoneNumber": "123"}
    assert pc.record_agreement(world.tenant_id, contact) is not None
    assert pc.record_agreement(world.tenant_id, contact) is None  # 600061: already recorded
    assert pc.get_agreements(world.tenant_id)[0]["primaryContact"]["email"] == "ada@contoso.com"
    skus = pc.subscribed_skus(world.tenant_id)
    assert [s["productSku"]["skuPartNumber"] for s in skus] == [BASIC]
    assert isinstance(pc.subscriptions(world.tenant_id), list)


def test_wrong_secret_is_auth_failed(ms: MicrosoftClients, world: Seeded) -> None:
    wrong = PartnerCredential(PARTNER_TENANT, world.credential.client_id, "not-the-secret")
    with pytest.raises(e.AuthFailed) as info:
        ms.partner_center(wrong).check_connection()
    assert "not-the-secret" not in str(info.value)


def test_graph_and_exchange(ms: MicrosoftClients, world: Seeded) -> None:
    graph = ms.graph(world.credential, world.tenant_id)
    assert graph.gdap_relationships(world.tenant_id)[0]["status"] == "active"
    domains = {d["id"]: d for d in graph.domains()}
    assert domains["contoso.com"]["isVerified"] and not domains["pending.example"]["isVerified"]
    [sku] = graph.subscribed_skus()
    assert sku["skuPartNumber"] == BASIC
    assert graph.find_user_by_upn(USERS[0])["userPrincipalName"] == USERS[0]
    assert graph.find_user_by_upn("o'brien@contoso.com") is None

    with pytest.raises(e.UnverifiedDomain):
        graph.create_user(_new_user("x@pending.example"))
    user = graph.create_user(_new_user("new@contoso.com"))
    with pytest.raises(e.Conflict):
        graph.create_user(_new_user("new@contoso.com"))
    with pytest.raises(e.InvalidUsageLocation):
        graph.assign_licences(user["id"], add=[{"skuId": sku["skuId"], "disabledPlans": []}], remove=[])
    graph.update_user(user["id"], {"usageLocation": "NL"})
    graph.assign_licences(user["id"], add=[{"skuId": sku["skuId"], "disabledPlans": []}], remove=[])
    assert graph.get_user(user["id"], select=["assignedLicenses"])["assignedLicenses"][0]["skuId"] == sku["skuId"]

    exchange = ms.exchange(world.credential, world.tenant_id)
    assert graph.mailbox_ready(user["id"])  # the emulator's mailbox delay is zero unless a fault sets it
    exchange.add_mailbox_addresses("new@contoso.com", ["alias@contoso.com"])
    assert "smtp:alias@contoso.com" in exchange.get_mailbox("new@contoso.com")["EmailAddresses"]
    with pytest.raises(e.MailboxNotReady):
        exchange.get_mailbox(USERS[0])  # no licence, so no mailbox

    graph.delete_user(user["id"])
    with pytest.raises(e.NotFound):
        graph.get_user(user["id"])


def test_paging_and_delta(ms: MicrosoftClients, world: Seeded, emulator: testing.RunningEmulator) -> None:
    graph = ms.graph(world.credential, world.tenant_id)
    pages = list(graph.iter_user_pages(select=["id", "userPrincipalName"], top=3))
    assert len(pages) >= 3 and sum(len(p) for p in pages) == len(USERS)
    rounds = graph.users_delta(select=["id", "userPrincipalName"])
    assert sum(len(p) for p in rounds) == len(USERS)
    assert rounds.delta_link
    graph.create_user(_new_user("later@contoso.com"))
    changes = graph.users_delta(rounds.delta_link)
    assert [u["userPrincipalName"] for page in changes for u in page] == ["later@contoso.com"]
    with emulator.client() as control:
        control.post("/_emulator/delta/expire").raise_for_status()
    with pytest.raises(e.DeltaTokenExpired):
        list(graph.users_delta(changes.delta_link))


def test_a_dropped_connection_is_an_ambiguous_transient(world: Seeded, emulator: testing.RunningEmulator) -> None:
    """The emulator cuts answers short (`error_rate`): the clients see a network failure that may have
    reached Microsoft, so only an idempotent call may repeat it."""
    clients = MicrosoftClients(settings_for(world, retry_max_attempts=1))  # each failure as it comes
    try:
        graph = clients.graph(world.credential, world.tenant_id)
        graph.subscribed_skus()  # signed in before the faults
        emulator.set_faults(error_rate=1.0)
        dropped: list[e.Transient] = []
        for _ in range(120):
            try:
                graph.domains()
            except e.Transient as failed:
                if failed.status is None:
                    dropped.append(failed)
            if len(dropped) == 2:
                break
    finally:
        clients.close()
    assert len(dropped) == 2
    assert all(d.ambiguous and "unreachable (RemoteProtocolError)" in str(d) for d in dropped), dropped


def _new_user(upn: str) -> dict[str, object]:
    nickname = upn.split("@")[0]
    return {"accountEnabled": True, "displayName": nickname, "mailNickname": nickname, "userPrincipalName": upn,
            "passwordProfile": {"password": PASSWORD, "forceChangePasswordNextSignIn": True}}


def test_partner_center_purchase_keeps_its_request_id_across_retries(ms: MicrosoftClients, world: Seeded,
                                                                      emulator: testing.RunningEmulator) -> None:
    pc = ms.partner_center(world.credential)
    contact = {"firstName": "Ada", "lastName": "Lovelace", "email": "ada@contoso.com", "phoneNumber": "123"}
    pc.record_agreement(world.tenant_id, contact)
    sub = pc.list_subscriptions(world.tenant_id)[0]
    # Half the answers are lost; every retry carries the same MS-RequestId, so there is one purchase.
    emulator.set_faults(lost_answer_rate=0.5)
    for _ in range(20):
        try:
            pc.update_subscription_quantity(world.tenant_id, sub, 5, request_id="purchase-1")
            break
        except e.Transient:
            continue
    emulator.set_faults(lost_answer_rate=0)
    assert pc.update_subscription_quantity(world.tenant_id, sub, 5, request_id="purchase-1")["quantity"] == 5
    assert pc.list_subscriptions(world.tenant_id)[0]["quantity"] == 5
    assert emulator.stats()["purchases"] == 1
    with pytest.raises(e.Forbidden):
        other = world.tenant_id
        emulator.add_tenant(company_name="NoMca", initial_domain="nomca.onmicrosoft.com",
                            skus=[{"sku_part_number": BASIC, "units": 1}], consented_apps=[world.credential.client_id])
        customer = pc.search_customers("Domain", "nomca")[0]["id"]
        assert customer != other
        pc.update_subscription_quantity(customer, pc.list_subscriptions(customer)[0], 2, request_id="purchase-2")
