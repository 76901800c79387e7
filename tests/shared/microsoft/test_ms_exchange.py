"""ExchangeClient: InvokeCommand URL, anchor header, cmdlet bodies, mailbox-not-ready mapping."""
from __future__ import annotations

import httpx
import pytest

from shared.microsoft import errors as e
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.exchange import ExchangeClient, smtp_address
from shared.microsoft.factory import MicrosoftClients
from tests.shared.microsoft.ms_fakes import CUSTOMER, EXO, FakeMicrosoft, body_of

INVOKE = f"{EXO}/{CUSTOMER}/InvokeCommand"
NOT_FOUND = httpx.Response(404, json={"error": {"code": "NotFound", "message": (
    "|Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException|The operation couldn't be "
    "performed because object 'a@contoso.com' couldn't be found on 'AM0PR01A001DC01.EURPR01A001.prod'.")}})


@pytest.fixture
def exo(ms: MicrosoftClients, credential: PartnerCredential) -> ExchangeClient:
    return ms.exchange(credential, CUSTOMER)


def test_get_mailbox(exo: ExchangeClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", INVOKE, httpx.Response(200, json={"value": [{"PrimarySmtpAddress": "a@contoso.com"}]}))
    assert exo.get_mailbox("a@contoso.com")["PrimarySmtpAddress"] == "a@contoso.com"
    request = fake.api_requests()[-1]
    assert body_of(request) == {"CmdletInput": {"CmdletName": "Get-Mailbox",
                                                "Parameters": {"Identity": "a@contoso.com"}}}
    assert request.headers["X-AnchorMailbox"] == (
        f"APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{CUSTOMER}")
    assert fake.token_requests[0]["scope"] == "https://outlook.office365.com/.default"
    assert fake.token_requests[0]["_tenant"] == CUSTOMER
    assert "client-request-id" in request.headers


def test_mailbox_not_there_yet(exo: ExchangeClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", INVOKE, NOT_FOUND)
    with pytest.raises(e.MailboxNotReady):
        exo.get_mailbox("a@contoso.com")
    assert len(fake.api_requests()) == 1  # not retried here: the pipeline waits on a durable timer
    fake.on("POST", INVOKE, httpx.Response(200, json={"value": []}))
    with pytest.raises(e.MailboxNotReady):
        exo.get_mailbox("a@contoso.com")


def test_add_addresses(exo: ExchangeClient, fake: FakeMicrosoft) -> None:
    fake.on("POST", INVOKE, httpx.Response(200, json={"value": []}))
    exo.add_mailbox_addresses("a@contoso.com", ["alias@contoso.com", "SMTP:other@contoso.com"])
    assert body_of(fake.api_requests()[-1]) == {"CmdletInput": {"CmdletName": "Set-Mailbox", "Parameters": {
        "Identity": "a@contoso.com",
        "EmailAddresses": {"@odata.type": "#Exchange.GenericHashTable",
                           "Add": ["smtp:alias@contoso.com", "smtp:other@contoso.com"]}}}}
    exo.add_mailbox_addresses("a@contoso.com", [])
    assert len(fake.api_requests()) == 1
    fake.on("POST", INVOKE, NOT_FOUND)
    with pytest.raises(e.MailboxNotReady):
        exo.add_mailbox_addresses("a@contoso.com", ["alias@contoso.com"])


def test_smtp_address() -> None:
    assert smtp_address("a@b.c") == "smtp:a@b.c"
    assert smtp_address("smtp:a@b.c") == "smtp:a@b.c"
    assert smtp_address("SMTP:a@b.c") == "smtp:a@b.c"


def test_exchange_is_throttled_under_its_own_key(exo: ExchangeClient, fake: FakeMicrosoft,
                                                 ms: MicrosoftClients) -> None:
    fake.on("POST", INVOKE, [httpx.Response(429, headers={"Retry-After": "1"}),
                             httpx.Response(200, json={"value": [{"Identity": "a"}]})])
    exo.get_mailbox("a@contoso.com")
    assert ms.limiter.blocked_for(f"graph:{CUSTOMER}") == 0.0
    rates = dict(ms.limiter.allowed_rates())
    assert rates[f"exchange:{CUSTOMER}"] is not None and f"graph:{CUSTOMER}" not in rates
