"""Fair use: per-key and per-customer token buckets in the real (test session's) Redis."""
from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from shared.redis import reset_redis
from shared.settings import reset_settings
from tests.api.conftest import Api, World, new_key, problem_of

# Rates so slow that no token comes back during a test: the outcome never depends on timing.
SLOW = "0.001"


@pytest.fixture
def limits(api_env: pytest.MonkeyPatch, limiter_redis_url: str, limiter_redis: Any) -> Iterator[Callable[..., None]]:
    """Set the fair-use settings for this test (Redis emptied before and after); the package's back after it."""
    with pytest.MonkeyPatch.context() as mp:
        def set_limits(*, key: tuple[str, str] = ("0", "0"), customer: tuple[str, str] = ("0", "0"),
                       redis_url: str = limiter_redis_url) -> None:
            mp.setenv("REDIS_URL", redis_url)
            mp.setenv("API_RATE_PER_KEY", key[0])
            mp.setenv("API_BURST_PER_KEY", key[1])
            mp.setenv("API_RATE_PER_CUSTOMER", customer[0])
            mp.setenv("API_BURST_PER_CUSTOMER", customer[1])
            reset_settings()
            reset_redis()

        yield set_limits
    reset_settings()
    reset_redis()


def test_a_burst_past_the_key_limit_is_429_with_retry_after(raw: TestClient, limits: Any) -> None:
    limits(key=(SLOW, "3"))
    mine, other = Api(raw, new_key("operator")), Api(raw, new_key("operator"))
    assert [mine.get("/v1/customer-plans").status_code for _ in range(3)] == [200, 200, 200]
    r = mine.get("/v1/customer-plans")
    body = problem_of(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1 and "retry" in body["detail"]
    # Another key has its own bucket.
    assert other.get("/v1/customer-plans").status_code == 200
    # The operations routes are not charged.
    assert raw.get("/healthz").status_code == 200


def test_customers_have_independent_buckets(raw: TestClient, limits: Any, make_world: Callable[..., World]) -> None:
    a, b = make_world(), make_world()
    limits(customer=(SLOW, "2"))
    op = Api(raw, new_key("operator"))
    assert [op.get(f"/v1/customers/{a.customer_id}/users").status_code for _ in range(2)] == [200, 200]
    problem_of(op.get(f"/v1/customers/{a.customer_id}/users"), 429, "rate_limited")
    # Customer A's bucket binds whichever key asks about it (its own key included) ...
    problem_of(Api(raw, a.customer_key).get("/v1/customer-plans"), 429, "rate_limited")
    # ... and customer B's is untouched; a call naming no customer is charged to no customer.
    assert op.get(f"/v1/customers/{b.customer_id}/users").status_code == 200
    assert op.get("/v1/customer-plans").status_code == 200


def test_zero_turns_a_bucket_off(raw: TestClient, limits: Any, world: World) -> None:
    limits(key=(SLOW, "2"), customer=("0", "1"))
    op = Api(raw, new_key("operator"))
    assert [op.get(f"/v1/customers/{world.customer_id}/users").status_code for _ in range(2)] == [200, 200]
    problem_of(op.get("/v1/customer-plans"), 429, "rate_limited")
    limits(key=("0", "2"), customer=("0", "1"))
    assert {op.get(f"/v1/customers/{world.customer_id}/users").status_code for _ in range(5)} == {200}


def test_redis_unreachable_lets_calls_through_and_logs_once(raw: TestClient, limits: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    limits(key=(SLOW, "1"), redis_url=f"redis://127.0.0.1:{port}/0")
    op = Api(raw, new_key("operator"))
    with caplog.at_level(logging.WARNING, logger="shared.fair_use"):
        assert {op.get("/v1/customer-plans").status_code for _ in range(3)} == {200}
    warnings = [r for r in caplog.records if "not enforced" in r.getMessage()]
    assert len(warnings) == 1, warnings
