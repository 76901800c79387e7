"""The clients' typed access refusals against the emulator over HTTPS with msal: consent, roles, credentials."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.microsoft import errors as e
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from tests.shared.microsoft.ms_emulator import CLIENT_ID, CLIENT_SECRET, PARTNER_TENANT, Seeded, seed, settings_for

testing = pytest.importorskip("emulator.testing")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
GRAPH_APP = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP = "00000002-0000-0ff1-ce00-000000000000"
LICENSE_ADMIN = "4d6ac14f-3453-41d0-bef9-a3e0c569773a"
RESELLER = PartnerCredential(PARTNER_TENANT, CLIENT_ID, CLIENT_SECRET, reseller="Contoso Partners")


@pytest.fixture(scope="module")
def emulator() -> Iterator[testing.RunningEmulator]:
    with testing.running_emulator() as running:
        yield running


@pytest.fixture
def world(emulator: testing.RunningEmulator) -> Seeded:
    return seed(emulator)


@pytest.fixture
def ms(world: Seeded) -> Iterator[MicrosoftClients]:
    clients = MicrosoftClients(settings_for(world, retry_budget_s=2.0))
    yield clients
    clients.close()


def _patch(emulator: testing.RunningEmulator, tenant_id: str, **changes: object) -> None:
    with emulator.client() as control:
        control.patch(f"/_emulator/tenants/{tenant_id}", json=changes).raise_for_status()


def test_a_tenant_without_the_apps_consent_is_consent_missing_until_it_is_granted(
        emulator: testing.RunningEmulator, world: Seeded, ms: MicrosoftClients) -> None:
    _patch(emulator, world.tenant_id, consented_apps=[])
    with pytest.raises(e.ConsentMissing) as refused:
        ms.graph(RESELLER, world.tenant_id).domains()
    assert refused.value.code == "AADSTS700016" and refused.value.tenant_id == world.tenant_id
    assert refused.value.partner is not None and refused.value.partner.reseller == "Contoso Partners"
    assert CLIENT_SECRET not in str(refused.value) and world.tenant_id in str(refused.value)

    pc = ms.partner_center(RESELLER)
    grants = [(GRAPH_APP, "User.ReadWrite.All"), (EXCHANGE_APP, "Exchange.ManageAsApp")]
    assert pc.grant_application_consent(world.tenant_id, CLIENT_ID, grants) is True
    assert pc.grant_application_consent(world.tenant_id, CLIENT_ID, grants) is False  # 409: already there
    # At once, not a minute later: the refused msal app was dropped with its cached refusal.
    assert ms.graph(RESELLER, world.tenant_id).domains()


def test_a_consent_without_exchange_is_aadsts65001_for_exchange(emulator: testing.RunningEmulator,
                                                                world: Seeded, ms: MicrosoftClients) -> None:
    _patch(emulator, world.tenant_id, consented_apps=[])
    ms.partner_center(RESELLER).grant_application_consent(world.tenant_id, CLIENT_ID, [(GRAPH_APP, "User.Read.All")])
    with pytest.raises(e.ConsentMissing) as refused:
        ms.exchange(RESELLER, world.tenant_id).get_mailbox("user0@contoso.com")
    assert refused.value.code == "AADSTS65001"


def test_a_call_the_roles_do_not_allow_is_permission_denied(emulator: testing.RunningEmulator, world: Seeded,
                                                            ms: MicrosoftClients) -> None:
    _patch(emulator, world.tenant_id, gdap_roles=[LICENSE_ADMIN])
    graph = ms.graph(RESELLER, world.tenant_id)
    assert graph.find_user_by_upn("user0@contoso.com") is not None
    body = {"accountEnabled": True, "displayName": "N", "mailNickname": "n", "userPrincipalName": "n@contoso.com",
            "passwordProfile": {"password": "Str0ng!pass-x", "forceChangePasswordNextSignIn": True}}
    with pytest.raises(e.PermissionDenied) as denied:
        graph.create_user(body)
    assert denied.value.status == 403 and denied.value.code == "Authorization_RequestDenied"
    assert denied.value.tenant_id == world.tenant_id
    with pytest.raises(e.PermissionDenied):
        ms.exchange(RESELLER, world.tenant_id).get_mailbox("user0@contoso.com")


def test_a_wrong_secret_and_a_revoked_refresh_token_are_credentials_rejected(
        emulator: testing.RunningEmulator, world: Seeded, ms: MicrosoftClients) -> None:
    wrong = PartnerCredential(PARTNER_TENANT, CLIENT_ID, "not-the-secret", reseller="Contoso Partners")
    with pytest.raises(e.CredentialsRejected) as refused:
        ms.partner_center(wrong).check_connection()
    assert refused.value.code == "AADSTS7000215" and "not-the-secret" not in str(refused.value)

    partner = emulator.add_partner(PARTNER_TENANT, CLIENT_ID, CLIENT_SECRET)  # its refresh token too
    with_token = PartnerCredential(PARTNER_TENANT, CLIENT_ID, CLIENT_SECRET, partner["refresh_token"])
    ms.partner_center(with_token).check_connection()
    with emulator.client() as control:
        control.post(f"/_emulator/partners/{CLIENT_ID}/revoke-refresh-tokens").raise_for_status()
    revoked = PartnerCredential(PARTNER_TENANT, CLIENT_ID, CLIENT_SECRET, partner["refresh_token"], reseller="R")
    fresh = MicrosoftClients(settings_for(world))  # no token cached from before the revocation
    try:
        with pytest.raises(e.CredentialsRejected) as expired:
            fresh.partner_center(revoked).check_connection()
    finally:
        fresh.close()
    assert expired.value.code == "AADSTS50173" and partner["refresh_token"] not in str(expired.value)
