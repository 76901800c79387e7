"""The switchable difficulties (latency, errors, throttling, lag, mailbox delay) and their merge rules."""
from __future__ import annotations

import copy
import random
from typing import Any

from .errors import ApiError

DEFAULTS: dict[str, Any] = {
    "latency_ms": {"mean": 0.0, "jitter": 0.0},
    "error_rate": 0.0,
    "graph_rate_per_tenant": None,
    "exchange_rate_per_tenant": None,  # None: same rate as Graph
    "partner_center_rate": None,
    # A call inside an announced Retry-After window restarts it this many times longer (1: no growth).
    "retry_after_growth": 1.0,
    "replication_lag_s": 0.0,
    "mailbox_delay_s": {"first": 0.0, "next": 0.0},
    "token_fail_rate": 0.0,
    "token_lifetime_s": 3599,
    "new_tenant_token_delay_s": 0.0,
    # A CPV consent granted through Partner Center gives tokens only this long after (propagation).
    "consent_delay_s": 0.0,
    # Units bought through Partner Center show in Graph's subscribedSkus only this long after.
    "purchase_delay_s": 0.0,
    # A purchase (quantity change, checkout) is applied but its answer is lost (a 500) at this rate.
    "lost_answer_rate": 0.0,
}
_NESTED = ("latency_ms", "mailbox_delay_s")
_RATES = ("error_rate", "token_fail_rate", "lost_answer_rate")
_OPTIONAL = ("graph_rate_per_tenant", "exchange_rate_per_tenant", "partner_center_rate")


class Faults:
    """Current fault settings; `update` merges (nested objects too) and validates everything first."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.values: dict[str, Any] = copy.deepcopy(DEFAULTS)
        self.rng = rng or random.Random()

    def reset(self) -> None:
        self.values = copy.deepcopy(DEFAULTS)

    def view(self) -> dict[str, Any]:
        return copy.deepcopy(self.values)

    def update(self, patch: dict[str, Any]) -> None:
        merged = copy.deepcopy(self.values)
        for key, value in patch.items():
            if key not in DEFAULTS:
                raise ApiError(400, "invalid", f"unknown fault {key!r}; known: {sorted(DEFAULTS)}")
            if key in _NESTED:
                if not isinstance(value, dict) or set(value) - set(DEFAULTS[key]):
                    raise ApiError(400, "invalid", f"{key} takes {sorted(DEFAULTS[key])}")
                merged[key].update({k: _number(key, v) for k, v in value.items()})
            elif key in _OPTIONAL:
                merged[key] = None if value in (None, 0) else _number(key, value)
            else:
                merged[key] = _number(key, value)
            if key in _RATES and not 0 <= merged[key] <= 1:
                raise ApiError(400, "invalid", f"{key} must be between 0 and 1")
            if key == "retry_after_growth" and merged[key] < 1:
                raise ApiError(400, "invalid", "retry_after_growth must be at least 1")
        self.values = merged

    # -- the questions the request path asks --------------------------------------------------------
    def latency_s(self) -> float:
        mean, jitter = self.values["latency_ms"]["mean"], self.values["latency_ms"]["jitter"]
        if mean <= 0 and jitter <= 0:
            return 0.0
        return max(0.0, mean + self.rng.uniform(-jitter, jitter)) / 1000

    def injected_error(self) -> str | None:
        """None, or "500", "503" or "drop" for this request."""
        rate = self.values["error_rate"]
        if rate <= 0 or self.rng.random() >= rate:
            return None
        return self.rng.choice(("500", "503", "drop"))

    def token_fails(self) -> bool:
        rate = self.values["token_fail_rate"]
        return rate > 0 and self.rng.random() < rate

    def answer_lost(self) -> bool:
        rate = self.values["lost_answer_rate"]
        return rate > 0 and self.rng.random() < rate

    @property
    def purchase_delay_s(self) -> float:
        return float(self.values["purchase_delay_s"])

    def rate(self, family: str) -> float | None:
        if family == "exchange":
            return self.values["exchange_rate_per_tenant"] or self.values["graph_rate_per_tenant"]
        if family == "graph":
            return self.values["graph_rate_per_tenant"]
        return self.values["partner_center_rate"]

    @property
    def retry_after_growth(self) -> float:
        return float(self.values["retry_after_growth"])

    @property
    def replication_lag_s(self) -> float:
        return float(self.values["replication_lag_s"])

    @property
    def mailbox_delay(self) -> tuple[float, float]:
        delay = self.values["mailbox_delay_s"]
        return float(delay["first"]), float(delay["next"])


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ApiError(400, "invalid", f"{key} must be a non-negative number")
    return float(value)
