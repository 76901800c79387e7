"""Logging context and redaction; counters fall back to the process when there is no Redis."""
from __future__ import annotations

import json
import logging

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


def test_counters_without_redis_count_in_process(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.delenv("REDIS_URL", raising=False)
    before = counters.read(counters.THROTTLED_KEY).get("graph:t-test", 0)
    counters.throttled("graph:t-test")
    assert counters.read(counters.THROTTLED_KEY)["graph:t-test"] == before + 1
