"""No secret, refresh token, bearer token or password in any log record or exception message."""
from __future__ import annotations

import logging

import httpx
import pytest

from shared.microsoft import errors as e
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from tests.shared.microsoft.ms_fakes import (
    CUSTOMER,
    EXO,
    GRAPH,
    PARTNER,
    PC,
    REFRESH,
    SECRET,
    FakeMicrosoft,
    graph_error,
)

PASSWORD = "Tr0ub4dor&3-temporary"


def leaks(text: str, fake: FakeMicrosoft) -> list[str]:
    secrets = [SECRET, REFRESH, PASSWORD, *fake.issued, *[f"rotated-{i}" for i in range(1, 9)]]
    found = [s for s in secrets if s in text]
    if "Bearer " in text:
        found.append("Bearer ...")
    return found


def test_nothing_secret_is_logged_or_raised(ms: MicrosoftClients, fake: FakeMicrosoft,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, msal, httpx
    credential = PartnerCredential(PARTNER, "app", SECRET)
    user_cred = PartnerCredential(PARTNER, "app", SECRET, refresh_token=REFRESH)
    raised: list[BaseException] = []

    fake.on("POST", f"{GRAPH}/users", [
        graph_error(429, "TooManyRequests", "slow", headers={"Retry-After": "1"}),
        httpx.ReadTimeout("slow"),
        graph_error(400, "Request_BadRequest", "The specified password does not comply with password "
                    "complexity requirements."),
    ])
    fake.on("GET", f"{GRAPH}/users/u1", graph_error(401, "InvalidAuthenticationToken", "expired"))
    fake.on("GET", f"{PC}/agreements", httpx.Response(200, json={"items": []}))
    fake.on("POST", f"{EXO}/{CUSTOMER}/InvokeCommand", httpx.Response(500, text="Bearer leaked-in-body"))

    graph = ms.graph(credential, CUSTOMER)
    calls = [
        lambda: graph.create_user({"userPrincipalName": "a@contoso.com", "passwordProfile": {
            "password": PASSWORD, "forceChangePasswordNextSignIn": True}}),
        lambda: graph.get_user("u1"),
        lambda: ms.partner_center(user_cred).check_connection(),
        lambda: ms.partner_center(credential).mca_template_id(),
        lambda: ms.exchange(credential, CUSTOMER).get_mailbox("a@contoso.com"),
    ]
    for call in calls:
        try:
            call()
        except e.MicrosoftError as exc:
            raised.append(exc)
    fake.token_reply = lambda form: httpx.Response(401, json={
        "error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.",
        "error_codes": [7000215]})
    try:
        ms.graph(PartnerCredential(PARTNER, "other-app", SECRET), CUSTOMER).domains()
    except e.MicrosoftError as exc:
        raised.append(exc)

    assert len(raised) == 5
    assert any(r.name == "shared.microsoft" for r in caplog.records)
    for record in caplog.records:
        text = " ".join([record.getMessage(), repr(record.args), record.exc_text or ""])
        assert not leaks(text, fake), (record.name, text)
    for exc in raised:
        assert not leaks(f"{exc} {exc!r} {exc.args!r}", fake), exc


def test_debug_line_names_method_path_status_and_request_id(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                            credential: PartnerCredential,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="shared.microsoft")
    fake.on("GET", f"{GRAPH}/users?", httpx.Response(200, json={"value": []}))
    ms.graph(credential, CUSTOMER).find_user_by_upn("someone@contoso.com")
    [line] = [r.getMessage() for r in caplog.records if r.name == "shared.microsoft"]
    rid = fake.api_requests()[0].headers["client-request-id"]
    assert line.startswith("graph GET /v1.0/users -> 200 ")
    assert f"request_id={rid}" in line and "elapsed_ms=" in line
    assert "someone" not in line  # the query (filters, UPNs) stays out of the log


@pytest.mark.parametrize(("error", "number", "expected"), [
    ("unauthorized_client", 700016, e.ConsentMissing),  # no consent in the customer tenant
    ("invalid_grant", 50173, e.CredentialsRejected),  # the stored refresh token was revoked
])
def test_access_refusals_name_the_reseller_and_tenant_and_nothing_secret(
        ms: MicrosoftClients, fake: FakeMicrosoft, caplog: pytest.LogCaptureFixture, error: str, number: int,
        expected: type[e.MicrosoftError]) -> None:
    caplog.set_level(logging.DEBUG)
    fake.token_reply = lambda form: httpx.Response(400, json={
        "error": error, "error_description": f"AADSTS{number}: refused.", "error_codes": [number]})
    reseller = PartnerCredential(PARTNER, "app", SECRET, refresh_token=REFRESH, reseller="Acme Reseller")
    with pytest.raises(expected) as refused:
        if expected is e.ConsentMissing:
            ms.graph(reseller, CUSTOMER).domains()
        else:
            ms.partner_center(reseller).check_connection()
    exc = refused.value
    assert exc.code == f"AADSTS{number}" and exc.partner is not None and exc.partner.reseller == "Acme Reseller"
    assert exc.tenant_id in (CUSTOMER, PARTNER) and exc.tenant_id in str(exc)
    assert not leaks(f"{exc} {exc!r} {exc.args!r} {exc.partner!r} {vars(exc)!r}", fake)
    for record in caplog.records:
        assert not leaks(" ".join([record.getMessage(), repr(record.args), record.exc_text or ""]), fake)
