"""Counters the benchmarks and reliability tests read through `GET /_emulator/stats`."""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

_TENANT_COUNTERS = ("requests", "throttled", "retry_after_violations", "users_created",
                    "duplicate_create_attempts", "licence_assignments", "purchases")


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.started = time.time()  # the process's own uptime, not Microsoft's time: real
        self.requests: defaultdict[str, defaultdict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.total_requests = 0
        self.throttled = 0
        self.retry_after_violations = 0
        self.users_created = 0
        self.duplicate_create_attempts = 0
        self.licence_assignments = 0
        self.licence_removals = 0
        self.tokens_issued = 0
        self.token_failures = 0
        self.consents = 0
        self.purchases = 0  # accepted quantity changes and orders (replays not counted)
        self.lost_answers = 0
        self.injected_errors: defaultdict[str, int] = defaultdict(int)
        self.by_tenant: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, route: str, status: int, tenant_id: str | None) -> None:
        self.requests[route][status] += 1
        self.total_requests += 1
        if tenant_id:
            self.by_tenant[tenant_id]["requests"] += 1

    def count(self, name: str, tenant_id: str | None, amount: int = 1) -> None:
        """Bump a top-level counter and, where a tenant is known, its per-tenant twin."""
        setattr(self, name, getattr(self, name) + amount)
        if tenant_id and name in _TENANT_COUNTERS:
            self.by_tenant[tenant_id][name] += amount

    def view(self) -> dict[str, Any]:
        return {
            "requests": {route: {str(code): n for code, n in codes.items()} for route, codes in self.requests.items()},
            "total_requests": self.total_requests,
            "throttled": self.throttled,
            "retry_after_violations": self.retry_after_violations,
            "users_created": self.users_created,
            "duplicate_create_attempts": self.duplicate_create_attempts,
            "licence_assignments": self.licence_assignments,
            "licence_removals": self.licence_removals,
            "tokens_issued": self.tokens_issued,
            "token_failures": self.token_failures,
            "consents": self.consents,
            "purchases": self.purchases,
            "lost_answers": self.lost_answers,
            "injected_errors": dict(self.injected_errors),
            "by_tenant": {tid: dict(c) for tid, c in self.by_tenant.items()},
            "uptime_s": round(time.time() - self.started, 3),
        }
