"""Logging context and redaction; counters fall back to the process when there is no Redis."""
from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.observability import counters
from shared.observability.logging import JsonFormatter, RedactingFormatter, log_context, redact


def _record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("t", logging.INFO, __file__, 1, msg, None, None)


def test_json_lines_carry_the_request_context() -> None:
    from shared.observability.logging import ContextFilter

    with log_context(request_id="r1", customer_id="c1", tenant_id="t1", step="ensure_user"):
        rec = _record("hello")
        ContextFilter().filter(rec)
    doc = json.loads(JsonFormatter().format(rec))
    assert doc["message"] == "hello"
    assert (doc["request_id"], doc["customer_id"], doc["tenant_id"], doc["step"]) == ("r1", "c1", "t1", "ensure_user")


@pytest.mark.parametrize("line", [
    "Authorization: Bearer eyJ0eXAiOiJKV1QiLCJhbGciOi.abc.def",
    '{"password": "S3cr3t!Passw0rd#"}',
    "client_secret=S3cr3t!Passw0rd#&x=1",
])
def test_secrets_never_reach_a_sink(line: str) -> None:
    assert "S3cr3t" not in redact(line) and "eyJ0eXAi" not in redact(line)
    assert "[redacted]" in RedactingFormatter("%(message)s").format(_record(line))


@pytest.mark.parametrize("line", [
    "user details {'password': 'S3cr3t&Pa,ss}w0rd', 'upn': 'a@b.c'}",  # a Python repr, value with & , }
    "{'temporary_password': \"S3cr3t'&x\"}",
    '{"admin_password": "S3cr3t&amp=1"}',
    "password=S3cr3t&Passw0rd",  # unquoted, & inside the value and no parameter after it
    "refresh_token=S3cr3t-token&next=1",
])
def test_secret_values_are_redacted_whole(line: str) -> None:
    assert "S3cr3t" not in redact(line) and "w0rd" not in redact(line) and "[redacted]" in redact(line)


def test_a_query_string_keeps_the_parameters_after_a_secret() -> None:
    assert redact("client_secret=S3cr3t&scope=graph") == "client_secret=[redacted]&scope=graph"


def test_api_keys_are_redacted_anywhere_keeping_their_prefix() -> None:
    line = "refused m365p_0123456789ab_Zx-9_AbCdEfGhIjKlMnOpQrStUvWxYz012345 for customer c1"
    assert redact(line) == "refused m365p_0123456789ab_[redacted] for customer c1"


def test_json_lines_redact_a_message_that_carries_json() -> None:
    doc = JsonFormatter().format(_record('answer {"password": "S3cr3t&x", "ok": true}'))
    assert "S3cr3t" not in doc and json.loads(doc)["message"] == 'answer {"password": "[redacted]", "ok": true}'


def test_counters_without_redis_count_in_process(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("REDIS_URL", raising=False)
    before = counters.read(counters.THROTTLED_KEY).get("graph:t-test", 0)
    counters.throttled("graph:t-test")
    assert counters.read(counters.THROTTLED_KEY)["graph:t-test"] == before + 1


@pytest.mark.redis
def test_throttling_metrics_per_tenant_key_name_no_tenant(limiter_redis: Any, limiter_redis_url: str,
                                                          settings_env: pytest.MonkeyPatch) -> None:
    import httpx
    from prometheus_client.core import Metric

    from shared.microsoft.credentials import PartnerCredential
    from shared.microsoft.errors import Throttled
    from shared.microsoft.factory import MicrosoftClients
    from shared.observability.metrics import throttling_metrics
    from shared.redis import reset_redis
    from shared.settings import get_settings
    from tests.shared.microsoft.ms_fakes import GRAPH, FakeMicrosoft, graph_error

    tenant = "44444444-4444-4444-4444-444444444444"
    client = limiter_redis
    settings_env.setenv("REDIS_URL", limiter_redis_url)
    settings_env.setenv("ENVIRONMENT", "test")
    reset_redis()
    client.hincrby(counters.THROTTLED_KEY, f"graph:{tenant}", 7)  # an older release's raw label
    fake = FakeMicrosoft()
    fake.on("GET", f"{GRAPH}/users/u1", graph_error(429, "TooManyRequests", "busy", headers={"Retry-After": "30"}))
    try:
        with httpx.Client(transport=httpx.MockTransport(fake)) as http:
            ms = MicrosoftClients(get_settings(), http_client=http)
            with pytest.raises(Throttled):
                ms.graph(PartnerCredential("p", "app", "secret"), tenant).get_user("u1")
        families: dict[str, Metric] = {m.name: m for m in throttling_metrics()}
    finally:
        reset_redis()
    samples = {name: [(s.labels, s.value) for s in m.samples] for name, m in families.items()}
    [(labels, n)] = samples["provisioner_throttled_calls"]
    assert labels["api"] == "graph" and len(labels["tenant"]) == 12 and n == 1
    [(labels_closed, seconds)] = samples["provisioner_throttled_seconds"]
    assert labels_closed == labels and seconds == pytest.approx(30, abs=1)
    [(labels_rate, rate)] = samples["provisioner_allowed_rate"]
    assert labels_rate == labels and rate < get_settings().graph_rate_per_tenant
    assert tenant not in repr(samples) and "4444" not in repr(samples)
