"""Live reads (agreement, tenant search): cached briefly per customer, bounded per customer, against the emulator."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from shared.agreements import service as agreements
from shared.customers import live_reads
from shared.settings import reset_settings
from tests.api.conftest import Api, build_live_world, problem_of


@pytest.fixture
def fresh(api_env: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """An empty cache, the default settings (5 s, 4 at once) unless the test changes them."""
    live_reads.forget_all()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LIVE_READ_CACHE_S", "5")
        mp.setenv("LIVE_READS_PER_CUSTOMER", "4")
        reset_settings()
        yield mp
    reset_settings()
    live_reads.forget_all()


def calls(emulator: Any, word: str) -> int:
    return sum(n for route, by in emulator.stats()["requests"].items() if word in route for n in by.values())


def test_two_reads_in_the_cache_time_make_one_microsoft_call(op: Api, emulator: Any, fresh: Any) -> None:
    a, b = build_live_world(emulator).world, build_live_world(emulator).world
    before = calls(emulator, "agreements")
    for _ in range(2):
        r = op.get(f"/v1/customers/{a.customer_id}/agreement")
        assert r.status_code == 200, r.text
    assert calls(emulator, "agreements") == before + 1
    # Another customer shares nothing: its own call.
    assert op.get(f"/v1/customers/{b.customer_id}/agreement").status_code == 200
    assert calls(emulator, "agreements") == before + 2
    # A key that may not see the customer gets no cached answer either.
    problem_of(Api(op.client, b.sp_key).get(f"/v1/customers/{a.customer_id}/agreement"), 404, "not_found")


def test_tenant_search_is_cached_per_customer_and_query(op: Api, emulator: Any, fresh: Any) -> None:
    lw = build_live_world(emulator)
    url = f"/v1/customers/{lw.world.customer_id}/tenant-search"
    q = lw.tenant["company_name"][:8]
    before = calls(emulator, "customers")
    first = op.get(url, params={"q": q})
    assert first.status_code == 200 and lw.tenant["tenant_id"] in {m["tenant_id"] for m in first.json()["items"]}
    spent = calls(emulator, "customers") - before
    assert spent >= 1
    assert op.get(url, params={"q": q}).json() == first.json()
    assert calls(emulator, "customers") - before == spent
    op.get(url, params={"q": q[:6]})  # another query: its own calls
    assert calls(emulator, "customers") - before > spent


def test_recording_the_agreement_is_seen_at_once(op: Api, emulator: Any, fresh: Any) -> None:
    c = build_live_world(emulator).world.customer_id
    assert op.get(f"/v1/customers/{c}/agreement").json()["signed"] is False
    assert op.post(f"/v1/customers/{c}/agreement", json={"first_name": "Ada", "last_name": "Lovelace",
                                                          "email": "ada@example.com"}).status_code == 201
    assert op.get(f"/v1/customers/{c}/agreement").json()["signed"] is True


def test_reads_over_the_bound_are_429(op: Api, emulator: Any, fresh: pytest.MonkeyPatch) -> None:
    fresh.setenv("LIVE_READS_PER_CUSTOMER", "1")
    reset_settings()
    busy, other = build_live_world(emulator).world, build_live_world(emulator).world
    inside, release = threading.Event(), threading.Event()
    real = agreements.read_live

    def held(provider: Any, tenant_id: str) -> Any:
        if tenant_id == busy.tenant_id:
            inside.set()
            release.wait(timeout=30)
        return real(provider, tenant_id)

    fresh.setattr(agreements, "read_live", held)
    answers: list[Any] = []
    reader = threading.Thread(target=lambda: answers.append(op.get(f"/v1/customers/{busy.customer_id}/agreement")))
    reader.start()
    try:
        assert inside.wait(timeout=30)
        r = op.get(f"/v1/customers/{busy.customer_id}/agreement")
        problem_of(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1
        assert op.get(f"/v1/customers/{other.customer_id}/agreement").status_code == 200  # its own bound
    finally:
        release.set()
        reader.join(timeout=60)
    assert answers[0].status_code == 200, answers[0].text
