"""The API's live licence reads share the workers' throttling state (Redis): windows and calls in flight."""
from __future__ import annotations

import multiprocessing
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from shared.customers import live
from shared.microsoft.caller import Api
from shared.redis import reset_redis
from shared.settings import get_settings, reset_settings
from tests.api.conftest import SKU, build_world, problem_of
from tests.api.conftest import Api as Client
from tests.shared.microsoft.ms_processes import read_skus_twice, take_and_die

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@pytest.fixture
def shared_state(
        limiter_redis_url: str, limiter_redis: Any, api_env: pytest.MonkeyPatch,
                 emulator: Any) -> Iterator[None]:
    """The API process uses the Redis limiter the worker processes use."""
    api_env.setenv("REDIS_URL", limiter_redis_url)
    reset_settings()
    reset_redis()
    live.use_clients(None)
    yield
    api_env.delenv("REDIS_URL")
    reset_settings()
    reset_redis()
    live.use_clients(None)
    emulator.set_faults(graph_rate_per_tenant=None, partner_center_rate=None)


def tenant_with_partner(em: Any) -> tuple[tuple[str, str, str], str, str]:
    """(partner tenant, client id, secret), the customer tenant id, the customer id in the database."""
    partner = (str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex)
    em.add_partner(*partner)
    slug = uuid.uuid4().hex[:10]
    tenant = em.add_tenant(company_name=f"Busy {slug}", initial_domain=f"busy{slug}.onmicrosoft.com",
                           domains=[{"name": f"busy{slug}.example", "verified": True}],
                           skus=[{"sku_part_number": SKU, "units": 5}], mca_signed=True, gdap="active", users=[])
    world = build_world(pc_tenant_id=partner[0], client_id=partner[1], client_secret=partner[2],
                        tenant_id=tenant["tenant_id"], skus=False)
    return partner, tenant["tenant_id"], world.customer_id


def partner_center_calls(em: Any) -> int:
    """Calls the emulator's Partner Center answered (the licence view reads it, per partner)."""
    return sum(sum(by_status.values()) for route, by_status in em.stats()["requests"].items()
               if route.split(" ", 1)[-1].startswith("/v1/"))


def spawn() -> ProcessPoolExecutor:
    return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))


def test_a_window_a_worker_was_given_holds_for_the_api_too(
        limiter_redis_url: str, op: Client, emulator: Any, shared_state: None) -> None:
    partner, tenant_id, customer_id = tenant_with_partner(emulator)
    emulator.set_faults(partner_center_rate=0.1)  # one call, then "Retry-After: 10"
    worker_settings = {**get_settings().model_dump(), "redis_url": limiter_redis_url}
    with spawn() as pool:
        outcomes = pool.submit(read_skus_twice, worker_settings, partner, tenant_id).result(timeout=60)
    assert outcomes[0] == "ok" and outcomes[1].startswith("Throttled 429 10"), outcomes  # handed back, not slept
    before = partner_center_calls(emulator)
    r = op.get(f"/v1/customers/{customer_id}/licences")
    problem_of(r, 503, "microsoft_unavailable")
    assert 5 <= int(r.headers["Retry-After"]) <= 10
    assert partner_center_calls(emulator) == before  # the API did not call inside the worker's window


def test_slots_a_dead_worker_holds_keep_the_api_from_piling_on(
        limiter_redis_url: str, op: Client, emulator: Any,
                                                                shared_state: None) -> None:
    partner, _, customer_id = tenant_with_partner(emulator)
    limits = Api.all_from(get_settings())["partner_center"].limits
    with spawn() as pool:
        taken = pool.submit(take_and_die, limiter_redis_url, f"partner_center:{partner[0]}", limits,
                            limits.concurrency)
        assert taken.result(timeout=60) == limits.concurrency
    before = partner_center_calls(emulator)
    r = op.get(f"/v1/customers/{customer_id}/licences")
    problem_of(r, 503, "microsoft_unavailable")
    assert int(r.headers["Retry-After"]) >= 1
    assert partner_center_calls(emulator) == before
