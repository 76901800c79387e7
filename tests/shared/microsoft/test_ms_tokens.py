"""Sign-in through msal over the injected httpx client: caching, authorities, failures, refresh tokens."""
from __future__ import annotations

import dataclasses
import threading

import httpx
import pytest

from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import AuthFailed, Transient
from shared.microsoft.tokens import TokenProvider
from shared.settings import Settings
from tests.shared.microsoft.ms_fakes import CUSTOMER, LOGIN, PARTNER, REFRESH, SECRET, FakeMicrosoft

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
PC_SCOPE = "https://api.partnercenter.microsoft.com/.default"


@pytest.fixture
def provider(settings: Settings, fake: FakeMicrosoft):
    http = httpx.Client(transport=httpx.MockTransport(fake))
    yield TokenProvider(settings, http)
    http.close()


def test_credential_hides_secrets() -> None:
    cred = PartnerCredential(PARTNER, "cid", SECRET, refresh_token=REFRESH)
    for text in (repr(cred), str(cred), f"{cred}", repr([cred])):
        assert SECRET not in text
        assert REFRESH not in text
        assert PARTNER in text
    with pytest.raises(dataclasses.FrozenInstanceError):
        cred.client_secret = "x"  # type: ignore[misc]


def test_client_credentials_token_is_cached(provider: TokenProvider, fake: FakeMicrosoft,
                                            credential: PartnerCredential) -> None:
    first = provider.token(credential, CUSTOMER, GRAPH_SCOPE)
    second = provider.token(credential, CUSTOMER, GRAPH_SCOPE)
    assert first == second == fake.issued[0]
    assert len(fake.token_requests) == 1
    form = fake.token_requests[0]
    assert form["grant_type"] == "client_credentials"
    assert form["scope"] == GRAPH_SCOPE
    assert form["_tenant"] == CUSTOMER
    # no instance discovery against the public cloud: only the tenant's own OpenID document
    assert {str(r.url).split("?")[0] for r in fake.requests if r.method == "GET"} == {
        f"{LOGIN}/{CUSTOMER}/v2.0/.well-known/openid-configuration"}


def test_a_cached_token_is_served_without_msal_until_five_minutes_before_expiry(
        settings: Settings, fake: FakeMicrosoft, credential: PartnerCredential) -> None:
    now = [1_000_000.0]
    asked = []

    def app_factory(*args, **kwargs):  # type: ignore[no-untyped-def]
        import msal

        app = msal.ConfidentialClientApplication(*args, **kwargs)
        acquire = app.acquire_token_for_client

        def counted(**kw):  # type: ignore[no-untyped-def]
            asked.append(kw)
            return acquire(**kw)

        app.acquire_token_for_client = counted
        return app

    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        provider = TokenProvider(settings, http, app_factory=app_factory, clock=lambda: now[0])
        first = provider.token(credential, CUSTOMER, GRAPH_SCOPE)
        now[0] += 3599 - 301
        assert provider.token(credential, CUSTOMER, GRAPH_SCOPE) == first and len(asked) == 1
        now[0] += 2  # inside msal's five-minute margin: msal is asked again
        provider.token(credential, CUSTOMER, GRAPH_SCOPE)
        assert len(asked) == 2


def test_one_token_per_tenant_and_resource(provider: TokenProvider, fake: FakeMicrosoft,
                                           credential: PartnerCredential) -> None:
    provider.token(credential, CUSTOMER, GRAPH_SCOPE)
    provider.token(credential, PARTNER, GRAPH_SCOPE)
    provider.token(credential, PARTNER, PC_SCOPE)
    provider.token(credential, PARTNER, PC_SCOPE)
    assert [(f["_tenant"], f["scope"]) for f in fake.token_requests] == [
        (CUSTOMER, GRAPH_SCOPE), (PARTNER, GRAPH_SCOPE), (PARTNER, PC_SCOPE)]


def test_login_root_comes_from_settings(fake: FakeMicrosoft, credential: PartnerCredential) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        rewritten = httpx.Request(request.method, str(request.url).replace("https://login.sovereign.test", LOGIN),
                                  headers=request.headers, content=request.content)
        response = fake(rewritten)
        if response.status_code == 200 and "openid" in str(request.url):
            text = response.text.replace(LOGIN, "https://login.sovereign.test")
            return httpx.Response(200, content=text.encode(), headers={"content-type": "application/json"})
        return response

    settings = Settings(environment="test", ms_login_url="https://login.sovereign.test/")
    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        TokenProvider(settings, http).token(credential, CUSTOMER, GRAPH_SCOPE)
    assert all(url.startswith(f"https://login.sovereign.test/{CUSTOMER}/") for url in seen)


def test_concurrent_callers_share_one_token(provider: TokenProvider, fake: FakeMicrosoft,
                                            credential: PartnerCredential) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(provider.token(credential, CUSTOMER, GRAPH_SCOPE))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 8
    assert len(fake.token_requests) == 1


def test_refused_secret_is_auth_failed_without_the_secret(provider: TokenProvider, fake: FakeMicrosoft,
                                                          credential: PartnerCredential) -> None:
    fake.token_reply = lambda form: httpx.Response(401, json={
        "error": "invalid_client",
        "error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: abc",
        "error_codes": [7000215]})
    with pytest.raises(AuthFailed) as info:
        provider.token(credential, CUSTOMER, GRAPH_SCOPE)
    assert info.value.code == "AADSTS7000215"
    assert "Invalid client secret" in str(info.value)
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.args)


def test_unknown_tenant_is_auth_failed(provider: TokenProvider, fake: FakeMicrosoft,
                                       credential: PartnerCredential) -> None:
    fake.unknown_tenants.add("nope")
    with pytest.raises(AuthFailed):
        provider.token(credential, "nope", GRAPH_SCOPE)


def test_token_endpoint_5xx_is_transient(provider: TokenProvider, fake: FakeMicrosoft,
                                         credential: PartnerCredential) -> None:
    fake.token_reply = lambda form: httpx.Response(503, text="unavailable")
    with pytest.raises(Transient):
        provider.token(credential, CUSTOMER, GRAPH_SCOPE)


def test_unreachable_login_is_transient(settings: Settings, credential: PartnerCredential) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http, pytest.raises(Transient):
        TokenProvider(settings, http).token(credential, CUSTOMER, GRAPH_SCOPE)


def test_forget_fetches_a_fresh_token(provider: TokenProvider, fake: FakeMicrosoft,
                                      credential: PartnerCredential) -> None:
    first = provider.token(credential, CUSTOMER, GRAPH_SCOPE)
    provider.forget(credential, CUSTOMER)
    second = provider.token(credential, CUSTOMER, GRAPH_SCOPE)
    assert first != second
    assert len(fake.token_requests) == 2


def test_refresh_token_path_for_partner_center(settings: Settings, fake: FakeMicrosoft) -> None:
    now = [1_700_000_000.0]
    cred = PartnerCredential(PARTNER, "cid", SECRET, refresh_token=REFRESH)
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        provider = TokenProvider(settings, http, clock=lambda: now[0])
        first = provider.token(cred, PARTNER, PC_SCOPE)
        assert provider.token(cred, PARTNER, PC_SCOPE) == first  # cached
        now[0] += 3599  # past expiry minus the margin: asks again, with the rotated refresh token
        provider.token(cred, PARTNER, PC_SCOPE)
        provider.token(cred, CUSTOMER, GRAPH_SCOPE)  # Graph stays app-only
    grants = [(f["grant_type"], f.get("refresh_token")) for f in fake.token_requests]
    assert grants == [("refresh_token", REFRESH), ("refresh_token", "rotated-1"), ("client_credentials", None)]
