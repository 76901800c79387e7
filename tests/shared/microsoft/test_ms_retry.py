"""Retry rules and throttling etiquette of every call (through GraphClient and PartnerCenterClient)."""
from __future__ import annotations

import httpx
import pytest

from shared.microsoft import errors as e
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from shared.microsoft.limiter import LocalLimiter
from shared.microsoft.retry import backoff, parse_retry_after
from shared.settings import Settings
from tests.shared.microsoft.ms_fakes import (
    CUSTOMER,
    EXO,
    GRAPH,
    PARTNER,
    PC,
    FakeClock,
    FakeMicrosoft,
    close_key,
    graph_error,
)

OK_USER = httpx.Response(200, json={"id": "u1", "userPrincipalName": "a@contoso.com"})
THROTTLED = graph_error(429, "TooManyRequests", "Too many requests", headers={"Retry-After": "1"})


def request_ids(fake: FakeMicrosoft) -> list[str]:
    return [r.headers.get("client-request-id") or r.headers["MS-RequestId"] for r in fake.api_requests()]


def test_a_short_retry_after_is_honoured_in_the_call_with_the_same_request_id(
        ms: MicrosoftClients, fake: FakeMicrosoft, credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", [THROTTLED, OK_USER])
    assert ms.graph(credential, CUSTOMER).get_user("u1")["id"] == "u1"
    ids = request_ids(fake)
    assert len(ids) == 2 and ids[0] == ids[1]
    assert 1.0 <= sum(clock.sleeps) <= 1.2


def test_fractional_retry_after_and_http_date() -> None:
    assert parse_retry_after("0.25", now=0) == 0.25
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == pytest.approx(10)
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after(None, now=0) is None


def test_a_long_retry_after_ends_the_attempt_and_closes_the_tenant_for_everyone(
        ms: MicrosoftClients, fake: FakeMicrosoft, credential: PartnerCredential, clock: FakeClock) -> None:
    long_wait = graph_error(429, "TooManyRequests", "slow down", headers={"Retry-After": "120"})
    fake.on("GET", f"{GRAPH}/users/u1", long_wait)
    with pytest.raises(e.Throttled) as info:
        ms.graph(credential, CUSTOMER).get_user("u1")
    assert info.value.retry_after == 120 and info.value.status == 429  # handed to the pipeline at once
    assert len(fake.api_requests()) == 1 and clock.sleeps == []
    assert ms.limiter.blocked_for(f"graph:{CUSTOMER}") == pytest.approx(120)
    # Another client of the same tenant does not call inside the window; another tenant does.
    fake.on("GET", f"{GRAPH}/users/u1", OK_USER)
    with pytest.raises(e.Throttled) as again:
        ms.graph(credential, CUSTOMER).get_user("u1")
    assert again.value.status is None and again.value.retry_after == pytest.approx(120)
    assert len(fake.api_requests()) == 1 and clock.sleeps == []
    ms.graph(credential, "33333333-3333-3333-3333-333333333333").get_user("u1")
    assert len(fake.api_requests()) == 2


def test_just_past_the_inline_wait_is_not_slept(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", [graph_error(429, "TooManyRequests", "x", headers={"Retry-After": "3"}),
                                         OK_USER])
    with pytest.raises(e.Throttled) as info:
        ms.graph(credential, CUSTOMER).get_user("u1")
    assert info.value.retry_after == 3 and clock.sleeps == []


def test_a_short_block_is_waited_out_before_calling(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                    credential: PartnerCredential, clock: FakeClock) -> None:
    close_key(ms.limiter, f"graph:{CUSTOMER}", 1.5)
    fake.on("GET", f"{GRAPH}/users/u1", OK_USER)
    ms.graph(credential, CUSTOMER).get_user("u1")
    assert clock.sleeps == [pytest.approx(1.5)]


def test_429_without_retry_after_still_blocks(ms: MicrosoftClients, fake: FakeMicrosoft,
                                              credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", [graph_error(429, "TooManyRequests", "no header"), OK_USER])
    ms.graph(credential, CUSTOMER).get_user("u1")
    assert sum(clock.sleeps) >= 1.0


def test_partner_center_retry_after_from_the_message(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                     credential: PartnerCredential, clock: FakeClock) -> None:
    def busy(seconds: int) -> httpx.Response:
        return httpx.Response(429, json={"statusCode": 429,
                                         "message": f"Rate limit is exceeded. Try again in {seconds} seconds."})
    fake.on("GET", f"{PC}/customers/{CUSTOMER}", [busy(1), httpx.Response(200, json={"id": CUSTOMER})])
    assert ms.partner_center(credential).get_customer(CUSTOMER)["id"] == CUSTOMER
    assert 1 <= sum(clock.sleeps) <= 1.1
    fake.on("GET", f"{PC}/customers/{CUSTOMER}", busy(57))
    with pytest.raises(e.Throttled) as info:
        ms.partner_center(credential).get_customer(CUSTOMER)
    assert info.value.retry_after == 57
    assert ms.limiter.blocked_for(f"partner_center:{PARTNER}") == pytest.approx(57)  # per partner


def test_exchange_throttling_answers_are_honoured(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                  credential: PartnerCredential, clock: FakeClock) -> None:
    invoke = f"{EXO}/{CUSTOMER}/InvokeCommand"
    server_busy = httpx.Response(503, json={"error": {"code": "ServiceUnavailable", "message":
                                 "Ex1|Microsoft.Exchange.Data.Storage.ServerBusyException|The server is busy. "
                                 "BackOffMilliseconds: 30000"}})
    fake.on("POST", invoke, server_busy)
    with pytest.raises(e.Throttled) as info:
        ms.exchange(credential, CUSTOMER).get_mailbox("a@contoso.com")
    assert info.value.retry_after == 30
    assert ms.limiter.blocked_for(f"exchange:{CUSTOMER}") == pytest.approx(30)
    assert ms.limiter.blocked_for(f"graph:{CUSTOMER}") == 0.0  # Exchange has its own key


def test_transient_errors_back_off_and_succeed(ms: MicrosoftClients, fake: FakeMicrosoft,
                                               credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", [graph_error(503, "serviceNotAvailable", "busy"),
                                         httpx.Response(502, text="<html>bad gateway</html>"), OK_USER])
    ms.graph(credential, CUSTOMER).get_user("u1")
    ids = request_ids(fake)
    assert len(ids) == 3 and len(set(ids)) == 1
    assert len(clock.sleeps) == 2 and 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0


def test_backoff_is_capped_and_jittered() -> None:
    assert backoff(1, 30, lambda: 0.0) == 0.25
    assert backoff(1, 30, lambda: 1.0) == 0.5
    assert backoff(20, 30, lambda: 1.0) == 30
    assert backoff(20, 30, lambda: 0.0) == 15


def test_a_backoff_past_the_inline_wait_hands_the_wait_to_the_pipeline(
        ms: MicrosoftClients, fake: FakeMicrosoft, credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", graph_error(500, "generalException", "down"))
    with pytest.raises(e.Transient) as info:
        ms.graph(credential, CUSTOMER).get_user("u1")
    # Backoff 0.25-0.5, 0.5-1, 1-2 s slept; the next one (2-4 s) is the pipeline's to wait.
    assert len(fake.api_requests()) == 4 and len(clock.sleeps) == 3
    assert info.value.retry_after is not None and info.value.retry_after >= 2.0


def test_attempts_are_capped(fake: FakeMicrosoft, credential: PartnerCredential, clock: FakeClock,
                             settings: Settings) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", graph_error(500, "generalException", "down"))
    patient = settings.model_copy(update={"retry_inline_wait_s": 30.0, "retry_budget_s": 300.0})
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        ms = MicrosoftClients(patient, http_client=http, limiter=LocalLimiter(clock.now),
                              sleep=clock.sleep, clock=clock.now)
        with pytest.raises(e.Transient):
            ms.graph(credential, CUSTOMER).get_user("u1")
    assert len(fake.api_requests()) == patient.retry_max_attempts


def test_the_budget_bounds_all_the_waiting_of_one_call(fake: FakeMicrosoft, credential: PartnerCredential,
                                                       clock: FakeClock, settings: Settings) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", graph_error(429, "TooManyRequests", "x", headers={"Retry-After": "1.5"}))
    short = settings.model_copy(update={"retry_budget_s": 4.0})
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        ms = MicrosoftClients(short, http_client=http, limiter=LocalLimiter(clock.now),
                              sleep=clock.sleep, clock=clock.now)
        started = clock.now()
        with pytest.raises(e.Throttled) as info:
            ms.graph(credential, CUSTOMER).get_user("u1")
    assert info.value.retry_after == 1.5
    assert len(fake.api_requests()) == 3  # t=0, ~1.6, ~3.2; waiting again would end past the 4 s budget
    assert clock.now() - started <= short.retry_budget_s


def test_a_busy_tenant_is_waited_for_briefly_then_handed_back(
        ms: MicrosoftClients, fake: FakeMicrosoft, credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", OK_USER)
    limits = ms.caller.apis["graph"].limits
    held = [ms.limiter.acquire(f"graph:{CUSTOMER}", limits, write=False, max_wait=0, reserved=False)
            for _ in range(limits.concurrency)]
    assert all(g.reason == "ok" for g in held)
    with pytest.raises(e.Throttled) as info:
        ms.graph(credential, CUSTOMER).get_user("u1")
    assert info.value.status is None and info.value.retry_after > 0
    assert fake.api_requests() == []
    assert 2.0 <= sum(clock.sleeps) <= 2.2  # polled for the inline wait, in small steps
    ms.limiter.release(f"graph:{CUSTOMER}", limits, held[0], "ok")
    ms.graph(credential, CUSTOMER).get_user("u1")
    assert len(fake.api_requests()) == 1


def test_writes_take_the_fewer_write_slots(ms: MicrosoftClients, fake: FakeMicrosoft,
                                           credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", OK_USER)
    fake.on("PATCH", f"{GRAPH}/users/u1", httpx.Response(204))
    limits = ms.caller.apis["graph"].limits
    held = [ms.limiter.acquire(f"graph:{CUSTOMER}", limits, write=True, max_wait=0, reserved=False)
            for _ in range(limits.write_concurrency)]
    assert all(g.reason == "ok" for g in held) and limits.write_concurrency < limits.concurrency
    graph = ms.graph(credential, CUSTOMER)
    graph.get_user("u1")  # reads still go
    with pytest.raises(e.Throttled):
        graph.update_user("u1", {"usageLocation": "NL"})
    assert [r.method for r in fake.api_requests()] == ["GET"]


def test_exchange_reads_are_reads_though_posted(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                credential: PartnerCredential) -> None:
    invoke = f"{EXO}/{CUSTOMER}/InvokeCommand"
    fake.on("POST", invoke, httpx.Response(200, json={"value": [{"Identity": "a"}]}))
    limits = ms.caller.apis["exchange"].limits
    for _ in range(limits.write_concurrency):
        ms.limiter.acquire(f"exchange:{CUSTOMER}", limits, write=True, max_wait=0, reserved=False)
    exo = ms.exchange(credential, CUSTOMER)
    assert exo.get_mailbox("a@contoso.com")["Identity"] == "a"  # Get-Mailbox: a read slot
    with pytest.raises(e.Throttled):
        exo.add_mailbox_addresses("a@contoso.com", ["b@contoso.com"])  # Set-Mailbox: a write


def test_a_429_teaches_the_tenant_a_lower_rate(ms: MicrosoftClients, fake: FakeMicrosoft,
                                              credential: PartnerCredential, clock: FakeClock) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", OK_USER)
    graph = ms.graph(credential, CUSTOMER)
    for _ in range(30):
        graph.get_user("u1")
        clock.sleep(0.05)  # 20 calls/s
    assert dict(ms.limiter.allowed_rates())[f"graph:{CUSTOMER}"] is None
    fake.on("GET", f"{GRAPH}/users/u1", [THROTTLED, OK_USER])
    graph.get_user("u1")
    learned = dict(ms.limiter.allowed_rates())[f"graph:{CUSTOMER}"]
    assert learned is not None and learned < 20  # from the 1000/s ceiling to below what got through


@pytest.mark.parametrize("status,code", [(400, "Request_BadRequest"), (403, "Authorization_RequestDenied"),
                                         (404, "Request_ResourceNotFound"), (409, "Conflict")])
def test_non_retryable_errors_are_not_retried(ms: MicrosoftClients, fake: FakeMicrosoft,
                                              credential: PartnerCredential, clock: FakeClock,
                                              status: int, code: str) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", graph_error(status, code, "no"))
    with pytest.raises(e.MicrosoftError) as info:
        ms.graph(credential, CUSTOMER).get_user("u1")
    assert not info.value.retryable
    assert len(fake.api_requests()) == 1 and clock.sleeps == []


def test_read_timeout_is_retried_on_idempotent_calls(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                     credential: PartnerCredential) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", [httpx.ReadTimeout("slow"), OK_USER])
    ms.graph(credential, CUSTOMER).get_user("u1")
    assert len(fake.api_requests()) == 2


def test_ambiguous_failure_of_a_non_idempotent_call_is_not_repeated(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                                    credential: PartnerCredential) -> None:
    fake.on("POST", f"{GRAPH}/things", [httpx.ReadTimeout("slow"), httpx.Response(201, json={})])
    with pytest.raises(e.Transient) as info:
        ms.caller.call("graph", credential=credential, token_tenant=CUSTOMER, limit_key=f"graph:{CUSTOMER}",
                       method="POST", url=f"{GRAPH}/things", json={})
    assert info.value.ambiguous
    assert len(fake.api_requests()) == 1
    fake.on("POST", f"{GRAPH}/things", [graph_error(500, "generalException", "maybe"), httpx.Response(201)])
    with pytest.raises(e.Transient):
        ms.caller.call("graph", credential=credential, token_tenant=CUSTOMER, limit_key=f"graph:{CUSTOMER}",
                       method="POST", url=f"{GRAPH}/things", json={})
    assert len(fake.api_requests()) == 2


def test_connect_error_is_retried_even_for_a_non_idempotent_call(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                                 credential: PartnerCredential) -> None:
    fake.on("POST", f"{GRAPH}/things", [httpx.ConnectError("refused"), httpx.Response(201, json={"ok": 1})])
    response = ms.caller.call("graph", credential=credential, token_tenant=CUSTOMER,
                              limit_key=f"graph:{CUSTOMER}", method="POST", url=f"{GRAPH}/things", json={})
    assert response.json() == {"ok": 1}


def test_create_user_is_not_repeated_after_a_dropped_connection(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                                credential: PartnerCredential) -> None:
    # The first POST may have created the user: the client hands the ambiguity to the pipeline, which
    # made the attempt durable and looks the user up before it ever creates again.
    fake.on("POST", f"{GRAPH}/users", [httpx.RemoteProtocolError("dropped"), httpx.Response(201, json={"id": "x"})])
    with pytest.raises(e.Transient) as exc:
        ms.graph(credential, CUSTOMER).create_user({"userPrincipalName": "a@contoso.com"})
    assert exc.value.ambiguous
    assert len(request_ids(fake)) == 1


def test_create_user_is_repeated_after_a_refused_connection(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                            credential: PartnerCredential) -> None:
    # A connection that was never made cannot have created anything: that repeat is safe.
    fake.on("POST", f"{GRAPH}/users", [httpx.ConnectError("refused"), httpx.Response(201, json={"id": "x"})])
    assert ms.graph(credential, CUSTOMER).create_user({"userPrincipalName": "a@contoso.com"}) == {"id": "x"}
    ids = request_ids(fake)
    assert len(ids) == 2 and ids[0] == ids[1]


def test_a_refused_token_is_renewed_once(ms: MicrosoftClients, fake: FakeMicrosoft,
                                         credential: PartnerCredential) -> None:
    expired = graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
    fake.on("GET", f"{GRAPH}/users/u1", [expired, OK_USER])
    ms.graph(credential, CUSTOMER).get_user("u1")
    auths = [r.headers["Authorization"] for r in fake.api_requests()]
    assert auths[0] != auths[1]
    fake.on("GET", f"{GRAPH}/users/u2", expired)
    with pytest.raises(e.AuthFailed):
        ms.graph(credential, CUSTOMER).get_user("u2")


def test_every_operation_has_its_own_request_id(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                credential: PartnerCredential) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", OK_USER)
    client = ms.graph(credential, CUSTOMER)
    client.get_user("u1")
    client.get_user("u1")
    a, b = request_ids(fake)
    assert a != b


def test_partner_center_request_and_correlation_ids(ms: MicrosoftClients, fake: FakeMicrosoft,
                                                    credential: PartnerCredential) -> None:
    fake.on("GET", f"{PC}/customers/", [graph_error(503, "x", "busy"), httpx.Response(200, json={"id": "c"})])
    client = ms.partner_center(credential, correlation_id="corr-1")
    client.get_customer("c1")
    client.get_customer("c2")
    sent = fake.api_requests()
    assert [r.headers["MS-CorrelationId"] for r in sent] == ["corr-1"] * 3
    rids = [r.headers["MS-RequestId"] for r in sent]
    assert rids[0] == rids[1] != rids[2]
    assert all("client-request-id" not in r.headers for r in sent)


def test_rate_is_paced_by_the_limiter(fake: FakeMicrosoft, clock: FakeClock,
                                     credential: PartnerCredential) -> None:
    fake.on("GET", f"{GRAPH}/users/u1", OK_USER)
    settings = Settings(environment="test", graph_rate_per_tenant=10, graph_burst_per_tenant=2)
    with httpx.Client(transport=httpx.MockTransport(fake)) as http:
        ms = MicrosoftClients(settings, http_client=http, limiter=LocalLimiter(clock.now),
                              sleep=clock.sleep, clock=clock.now)
        client = ms.graph(credential, CUSTOMER)
        start = clock.now()
        for _ in range(12):
            client.get_user("u1")
    # 2 from the burst, then 10 more at 10/s
    assert clock.now() - start == pytest.approx(1.0, abs=0.02)
