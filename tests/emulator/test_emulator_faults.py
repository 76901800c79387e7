"""The difficulties, switched on through PUT /_emulator/faults: throttling, lag, mailbox delay, errors.

Microsoft's time is the emulator's frozen clock here, moved by `advance_clock`: no test waits for it.
"""
from __future__ import annotations

import os

import httpx
import pytest

from .emulator_world import BASIC_SKU_ID, World, new_user

ADD_BASIC = {"addLicenses": [{"skuId": BASIC_SKU_ID, "disabledPlans": []}], "removeLicenses": []}


def _until_throttled(client: httpx.Client, path: str, limit: int = 50) -> httpx.Response:
    for _ in range(limit):
        response = client.get(path)
        if response.status_code == 429:
            return response
    raise AssertionError("never throttled")


def test_faults_merge_and_validate(world: World) -> None:
    control = world.control()
    control.put("/_emulator/faults", json={"latency_ms": {"mean": 5}})
    merged = control.put("/_emulator/faults", json={"latency_ms": {"jitter": 2}, "error_rate": 0}).json()
    assert merged["latency_ms"] == {"mean": 5, "jitter": 2}
    assert control.get("/_emulator/faults").json() == merged
    assert control.put("/_emulator/faults", json={"nonsense": 1}).status_code == 400
    assert control.put("/_emulator/faults", json={"error_rate": 2}).status_code == 400
    assert control.put("/_emulator/faults", json={"retry_after_growth": 0.5}).status_code == 400
    assert control.put("/_emulator/faults", json={"retry_after_growth": 4}).json()["retry_after_growth"] == 4


def test_throttle_then_recover_when_retry_after_is_honoured(world: World) -> None:
    world.emulator.set_faults(graph_rate_per_tenant=5)
    world.emulator.freeze_clock()
    graph = world.graph()
    for _ in range(5):  # the bucket's burst: the clock stands still, so nothing refills
        assert graph.get("/v1.0/domains").status_code == 200
    throttled = graph.get("/v1.0/domains")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert throttled.headers["Retry-After"] == "1"  # whole seconds, as Microsoft sends them
    world.emulator.advance_clock(1.0)
    assert graph.get("/v1.0/domains").status_code == 200
    stats = world.emulator.stats()
    assert stats["throttled"] == 1 and stats["retry_after_violations"] == 0
    assert stats["by_tenant"][world.tenant_id]["throttled"] == 1


def test_ignoring_retry_after_is_a_violation(world: World) -> None:
    world.emulator.set_faults(graph_rate_per_tenant=2)
    world.emulator.freeze_clock()
    graph = world.graph()
    first = _until_throttled(graph, "/v1.0/users")
    world.emulator.advance_clock(float(first.headers["Retry-After"]) / 2)
    again = graph.get("/v1.0/users")
    # The time left, rounded up to whole seconds as Microsoft sends them.
    assert again.status_code == 429 and again.headers["Retry-After"] == "1"
    stats = world.emulator.stats()
    assert stats["retry_after_violations"] == 1 and stats["throttled"] == 2
    assert stats["requests"]["GET /v1.0/users"]["429"] == 2


def test_partner_center_throttles_per_partner_in_its_own_shape(world: World) -> None:
    world.emulator.set_faults(partner_center_rate=3)
    throttled = _until_throttled(world.partner_center(), "/v1/customers")
    assert throttled.json()["statusCode"] == 429
    assert throttled.json()["message"].startswith("Rate limit is exceeded.")
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["message"] == "Rate limit is exceeded. Try again in 1 seconds."


def test_a_caller_ignoring_retry_after_is_throttled_longer(world: World) -> None:
    world.emulator.set_faults(graph_rate_per_tenant=2, retry_after_growth=5)
    graph = world.graph()
    first = _until_throttled(graph, "/v1.0/users")
    assert first.headers["Retry-After"] == "1"
    again = graph.get("/v1.0/users")
    assert again.status_code == 429 and again.headers["Retry-After"] == "5"
    stats = world.emulator.stats()
    assert stats["retry_after_violations"] == 1 and stats["by_tenant"][world.tenant_id]["retry_after_violations"] == 1


def test_replication_lag_hides_a_new_user(world: World) -> None:
    world.emulator.set_faults(replication_lag_s=0.6)
    world.emulator.freeze_clock()
    graph = world.graph()
    user = graph.post("/v1.0/users", json=new_user("late@contoso.com", usageLocation="NL")).json()
    assert graph.get(f"/v1.0/users/{user['id']}").status_code == 404
    assert graph.get("/v1.0/users/late@contoso.com").status_code == 404
    listed = graph.get("/v1.0/users", params={"$filter": "userPrincipalName eq 'late@contoso.com'"}).json()
    assert listed["value"] == []
    assert graph.post(f"/v1.0/users/{user['id']}/assignLicense", json=ADD_BASIC).status_code == 404
    assert graph.patch(f"/v1.0/users/{user['id']}", json={"jobTitle": "x"}).status_code == 404
    again = graph.post("/v1.0/users", json=new_user("late@contoso.com"))
    assert again.json()["error"]["details"][0]["code"] == "ObjectConflict"
    world.emulator.advance_clock(0.5)
    assert graph.get(f"/v1.0/users/{user['id']}").status_code == 404
    world.emulator.advance_clock(0.15)
    assert graph.get(f"/v1.0/users/{user['id']}").status_code == 200
    assert world.emulator.stats()["duplicate_create_attempts"] == 1


def test_mailbox_ready_after_its_delay_first_slower(world: World) -> None:
    world.emulator.set_faults(mailbox_delay_s={"first": 0.8, "next": 0.3})
    world.emulator.freeze_clock()
    graph = world.graph()
    first, second = (graph.post("/v1.0/users", json=new_user(f"{n}@contoso.com", usageLocation="NL")).json()
                     for n in ("first", "second"))
    graph.post(f"/v1.0/users/{first['id']}/assignLicense", json=ADD_BASIC)
    graph.post(f"/v1.0/users/{second['id']}/assignLicense", json=ADD_BASIC)
    assert graph.get(f"/v1.0/users/{first['id']}/mailboxSettings").status_code == 404
    assert world.emulator.tenant(world.tenant_id)["users"][1]["mailbox"] == "provisioning"
    world.emulator.advance_clock(0.3)
    assert graph.get(f"/v1.0/users/{second['id']}/mailboxSettings").status_code == 200
    assert graph.get(f"/v1.0/users/{first['id']}/mailboxSettings").status_code == 404
    world.emulator.advance_clock(0.55)
    assert graph.get(f"/v1.0/users/{first['id']}/mailboxSettings").status_code == 200
    states = {u["userPrincipalName"]: u["mailbox"] for u in world.emulator.tenant(world.tenant_id)["users"]}
    assert states["first@contoso.com"] == states["second@contoso.com"] == "ready"


def test_error_rate_gives_5xx_or_dropped_connections(world: World) -> None:
    world.emulator.set_faults(error_rate=1.0)
    graph = world.graph()  # the token endpoint is not subject to error_rate (token_fail_rate is its knob)
    outcomes: set[int | str] = set()
    for _ in range(30):
        try:
            outcomes.add(graph.get("/v1.0/domains").status_code)
        except httpx.TransportError:
            outcomes.add("dropped")
    assert outcomes <= {500, 503, "dropped"} and len(outcomes) >= 2
    assert world.control().get("/_emulator/stats").status_code == 200  # control API never fails
    assert sum(world.emulator.stats()["injected_errors"].values()) == 30


def test_a_dropped_connection_is_an_incomplete_answer_over_real_tls(world: World) -> None:
    """The drop is built on ASGI alone: the head promises a body, the app fails, uvicorn closes the connection.
    The client sees a network failure, its pool replaces the connection, and the emulator's log stays quiet."""
    assert world.emulator.log_path is not None
    logged_before = os.path.getsize(world.emulator.log_path)
    world.emulator.set_faults(error_rate=1.0)
    graph = world.graph()
    drops = 0
    for _ in range(120):
        try:
            graph.get("/v1.0/domains")
        except httpx.RemoteProtocolError as cut:
            assert "incomplete" in str(cut) or "without sending complete message body" in str(cut), cut
            drops += 1
            assert graph.get("/_emulator/stats").status_code == 200  # same client, a fresh connection
        if drops == 3:
            break
    assert drops == 3
    assert world.emulator.stats()["injected_errors"]["drop"] == 3
    with open(world.emulator.log_path, errors="replace") as log:
        log.seek(logged_before)
        output = log.read()
    assert "Traceback" not in output and "ConnectionDropped" not in output, output[-2000:]


def test_token_fail_rate_and_latency(world: World) -> None:
    world.emulator.set_faults(token_fail_rate=1.0)
    failed = world.control().post(f"/{world.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": world.client_id, "client_secret": world.client_secret,
        "scope": "https://graph.microsoft.com/.default"})
    assert failed.status_code == 503 and failed.json()["error"] == "temporarily_unavailable"
    world.emulator.set_faults(token_fail_rate=0, latency_ms={"mean": 150, "jitter": 0})
    graph = world.graph()
    before = world.emulator.freeze_clock()["time"]
    assert graph.get("/v1.0/domains").status_code == 200
    # A frozen clock's sleep advances it: the call spent exactly its latency in the emulator's time.
    assert world.emulator.clock()["time"] - before == pytest.approx(0.15)
