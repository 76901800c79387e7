"""Throttling when Microsoft's limits are unknown: the real pipeline against a tenant whose limit it must learn.

Default settings (the Graph ceiling is 300 calls/s per tenant, 4 calls in flight per tenant), a fresh
PostgreSQL database, Redis (broker db 15, limiter db 5, flushed), the emulator with one tenant that
allows `--limit` (20) Graph calls/s and as many Exchange calls/s, 5% transient errors (500, 503,
dropped connections) and 2 s replication lag, and real processes: `provisioner api`, two
`provisioner worker -P threads -c 4`, `provisioner beat`. Only clocks that decide how long the bench
takes are short: the reconciler looks every second, mailbox probes start after 0.2 s.

Phase A: `--users` (200) users accepted by the API in one bulk call, run to the end. Printed: users
succeeded, duplicate creates, 429s against all calls, `retry_after_violations` against
(concurrency - 1) x 429s, and the Graph calls/s the tenant accepted after the first 10 s (until 90% of
the users were done: after that the pipeline has too little work left to fill the rate).

Phases B and C: `--more` (500) users in a second bulk call; the tenant's limit becomes `--up` (50)/s,
then `--phase-s` (40) s later `--down` (5)/s. Printed: how long until a 5 s window where the tenant
accepted at least 0.8 x the new limit with at most a tenth of the calls refused (up), and until a 5 s
window with at most a tenth refused and at least 0.8 x the new limit accepted (down). Then the limit
is lifted and the remaining users finish.

    .venv/bin/python bench/throttling.py [--users 200] [--more 500] [--limit 20] [--up 50] [--down 5]
                                         [--pg-url URL] [--redis-url URL]

Prints the figures, then `RESULT {json}`.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Seeding here and the processes started below must encrypt and decrypt with the same key.
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 16)

from tests.harness.services import add_service_options, from_args  # noqa: E402

BROKER_DB, LIMITER_DB = 15, 5  # dbs no other suite or script of the project uses
# Clocks that only decide how long the bench takes; every throttling setting keeps its default.
BENCH_SETTINGS = {"ENVIRONMENT": "test", "LOG_LEVEL": "WARNING", "LOG_JSON": "false", "RECONCILE_INTERVAL_S": "1",
                  "MAILBOX_FIRST_DELAY_S": "0.2", "MAILBOX_MAX_DELAY_S": "2", "SYNC_DISPATCH_INTERVAL_S": "3600"}
WINDOW_S = 5


@dataclass
class Sample:
    t: float
    graph_ok: int
    graph_429: int
    exchange_ok: int
    exchange_429: int
    violations: int
    graph_rate: float | None
    exchange_rate: float | None
    succeeded: int
    steps: dict[str, int]


def env_for(pg_url: str, broker_url: str, limiter_url: str, emulator: Any) -> dict[str, str]:
    """The stack's environment with every throttling setting at its default (no MS_/GRAPH_/RETRY_ overrides)."""
    from tests.harness.stack_env import stack_env

    env = stack_env(database_url=pg_url, broker_url=broker_url, limiter_url=limiter_url, emulator=emulator,
                    settings=BENCH_SETTINGS)
    keep = ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL", "MS_CA_BUNDLE")
    return {k: v for k, v in env.items() if k in keep or not k.startswith(("MS_", "GRAPH_", "EXCHANGE_", "RETRY_"))}


def operator_key(pg_url: str) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from shared.auth.keys import create_key

    engine = create_engine(pg_url)
    with Session(engine) as s:
        key = create_key(s, "operator", None, name="bench")
        s.commit()
    engine.dispose()
    return key


def bulk(api: httpx.Client, tenant: Any, prefix: str, count: int) -> list[str]:
    """`count` users accepted by the API in one call (one alias each); the request ids."""
    users = [{"upn": f"{prefix}{i:04d}@{tenant.domain}", "first_name": "Bench", "last_name": f"User {i}",
              "usage_location": "GB", "aliases": [f"{prefix}{i:04d}.a0@{tenant.domain}"]} for i in range(count)]
    r = api.post(f"/v1/customers/{tenant.customer_id}/users:bulk", json={"user_plan_id": tenant.plan_id,
                                                                          "users": users})
    if r.status_code != 202:
        raise SystemExit(f"bulk refused: {r.status_code} {r.text[:500]}")
    return [q["id"] for q in r.json()["requests"]]


class Sampler:
    """Once a second: the tenant's accepted and refused calls (emulator), the learned rates (Redis)."""

    def __init__(self, emulator: Any, world: Any, tenant_id: str, ids: list[str], limiter_url: str) -> None:
        from shared.microsoft.limiter_redis import RedisLimiter

        self.emulator, self.world, self.tenant_id, self.ids = emulator, world, tenant_id, ids
        self.limiter = RedisLimiter(redis.Redis.from_url(limiter_url))
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _run(self) -> None:
        from shared.requests import kinds

        while not self._stop.is_set():
            stats = self.emulator.stats()
            counts = {("graph", True): 0, ("graph", False): 0, ("exchange", True): 0, ("exchange", False): 0}
            for route, by_status in stats["requests"].items():
                family = "graph" if " /v1.0/" in route else "exchange" if " /adminapi/" in route else None
                if family:
                    for status, n in by_status.items():
                        counts[(family, status != "429")] += n
            rates = dict(self.limiter.allowed_rates())
            succeeded = self.world.states(self.ids).get(kinds.SUCCEEDED, 0)
            steps = self.world.current_steps(self.ids)
            violations = stats["by_tenant"].get(self.tenant_id, {}).get("retry_after_violations", 0)
            self.samples.append(Sample(
                self.now(), counts[("graph", True)], counts[("graph", False)], counts[("exchange", True)],
                counts[("exchange", False)], violations, rates.get(f"graph:{self.tenant_id}"),
                rates.get(f"exchange:{self.tenant_id}"), succeeded, steps))
            self._stop.wait(1.0)

    def between(self, start: float, end: float) -> tuple[Sample, Sample]:
        inside = [s for s in self.samples if start <= s.t <= end]
        return inside[0], inside[-1]

    def graph_rate(self, start: float, end: float) -> tuple[float, float]:
        """(accepted Graph calls/s, refused share of Graph calls) between two moments."""
        a, b = self.between(start, end)
        ok, refused = b.graph_ok - a.graph_ok, b.graph_429 - a.graph_429
        return ok / max(b.t - a.t, 1e-9), refused / max(ok + refused, 1)

    def first_window(self, start: float, limit: float) -> float | None:
        """Seconds after `start` at which a WINDOW_S window began where the tenant accepted >= 0.8 x limit
        calls/s with at most a tenth refused."""
        for s in self.samples:
            if s.t < start or s.t + WINDOW_S > self.samples[-1].t:
                continue
            accepted, refused = self.graph_rate(s.t, s.t + WINDOW_S)
            if accepted >= 0.8 * limit and refused <= 0.1:
                return s.t + WINDOW_S - start
        return None

    def rate_series(self, field: str, start: float, end: float, every: int = 5) -> str:
        """Calls/s of a cumulative counter (`graph_ok`, `exchange_ok`) over every `every` samples."""
        rows = [s for s in self.samples if start <= s.t <= end][::every]
        return "  ".join(f"{b.t - start:.0f}s:{(getattr(b, field) - getattr(a, field)) / max(b.t - a.t, 1e-9):.1f}"
                         for a, b in itertools.pairwise(rows))

    def step_series(self, start: float, end: float, every: int = 5) -> str:
        rows = [s for s in self.samples if start <= s.t <= end][::every]
        return "\n    ".join(f"{s.t - start:.0f}s: " + " ".join(f"{k}={v}" for k, v in sorted(s.steps.items()))
                              for s in rows)

    def series(self, start: float, end: float, every: int = 5) -> str:
        rows = [s for s in self.samples if start <= s.t <= end][::every]
        return "  ".join(f"{s.t - start:.0f}s:{s.graph_rate:.1f}" if s.graph_rate is not None
                         else f"{s.t - start:.0f}s:ceiling" for s in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--more", type=int, default=500)
    parser.add_argument("--limit", type=float, default=20.0)
    parser.add_argument("--up", type=float, default=50.0)
    parser.add_argument("--down", type=float, default=5.0)
    parser.add_argument("--phase-s", type=float, default=40.0)
    parser.add_argument("--growth", type=float, default=1.0, help="emulator retry_after_growth")
    parser.add_argument("--timeout", type=float, default=400.0)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the stack other than its default (an experiment, not the figure)")
    add_service_options(parser)
    args = parser.parse_args()

    from emulator.testing import running_emulator
    from tests.harness.databases import create_database, drop_database

    with from_args(args) as svc:
        name = "bench_throttling_" + uuid.uuid4().hex[:8]
        url = create_database(svc.pg_admin_url, name, migrate=True)
        try:
            with running_emulator() as emulator:
                return run(url, emulator, svc, args)
        finally:
            svc.flush_redis(BROKER_DB, LIMITER_DB)
            drop_database(svc.pg_admin_url, name)


def run(pg_url: str, emulator: Any, svc: Any, args: argparse.Namespace) -> int:
    from shared.requests import kinds
    from shared.settings import Settings
    from tests.harness.processes import Processes
    from tests.harness.seeding import Seeder
    from tests.harness.stack_env import publishing_as

    svc.flush_redis(BROKER_DB, LIMITER_DB)
    limiter_url = svc.redis_url(LIMITER_DB)
    env = env_for(pg_url, svc.redis_url(BROKER_DB), limiter_url, emulator)
    overrides = dict(item.split("=", 1) for item in args.set)
    env.update(overrides)
    default_concurrency = Settings(environment="test").ms_concurrency_per_tenant
    concurrency = int(overrides.get("MS_CONCURRENCY_PER_TENANT", default_concurrency))
    world = Seeder(pg_url, emulator)
    tenant = world.tenant(units=args.users + args.more + 5)
    emulator.set_faults(latency_ms={"mean": 0, "jitter": 0}, error_rate=0.05, replication_lag_s=2.0,
                        graph_rate_per_tenant=args.limit, exchange_rate_per_tenant=None, partner_center_rate=None,
                        mailbox_delay_s={"first": 0, "next": 0}, token_fail_rate=0.0,
                        retry_after_growth=args.growth)
    key = operator_key(pg_url)
    with publishing_as(env), Processes(env) as stack:
        port = stack.api(workers=1)
        for n in range(2):
            stack.worker(f"w{n}", pool="threads", concurrency=4, loglevel="WARNING")
        stack.beat(loglevel="WARNING")
        stack.answering(2)  # workers connected before the clock starts
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"},
                          timeout=60) as api:
            first = bulk(api, tenant, "a", args.users)
            sampler = Sampler(emulator, world, tenant.tenant_id, first, limiter_url).start()
            states_a = world.wait(first, timeout=args.timeout)
            end_a = sampler.now()
            time.sleep(1.5)
            stats_a = emulator.stats()
            done_at = [s.t for s in sampler.samples if s.succeeded >= 0.9 * args.users]
            t90 = done_at[0] if done_at else end_a

            t_up = t_down = t_free = sampler.now()
            second: list[str] = []
            states_b: dict[str, int] = {}
            if args.more:  # --more 0: phase A alone
                second = bulk(api, tenant, "b", args.more)
                sampler.ids = second
                emulator.set_faults(graph_rate_per_tenant=args.up)
                t_up = sampler.now()
                time.sleep(args.phase_s)
                emulator.set_faults(graph_rate_per_tenant=args.down)
                t_down = sampler.now()
                time.sleep(args.phase_s)
                emulator.set_faults(graph_rate_per_tenant=None)
                t_free = sampler.now()
                states_b = world.wait(second, timeout=args.timeout)
            sampler.stop()
    why = failures(world, first + second)

    mine = stats_a["by_tenant"].get(tenant.tenant_id, {})
    calls, throttled = mine.get("requests", 0), mine.get("throttled", 0)
    violations = mine.get("retry_after_violations", 0)
    accepted, refused = sampler.graph_rate(10.0, t90)
    up_s = sampler.first_window(t_up, args.up) if args.more else None
    down_s = sampler.first_window(t_down, args.down) if args.more else None
    final = emulator.stats()["by_tenant"].get(tenant.tenant_id, {})
    world.close()

    print(f"phase A: a tenant allowing {args.limit:g} Graph calls/s (and Exchange), 5% errors, 2 s lag; default "
          f"settings (ceiling 300/s, {concurrency} calls in flight per tenant); {args.users} users via the API, "
          f"2 workers x 4 threads, beat")
    print(f"  users succeeded       : {states_a.get(kinds.SUCCEEDED, 0)}/{args.users} ({states_a}) in {end_a:.1f} s")
    print(f"  users created         : {mine.get('users_created', 0)}, duplicate creates "
          f"{mine.get('duplicate_create_attempts', 0)}")
    print(f"  429s                  : {throttled} of {calls} calls = {throttled / max(calls, 1):.3f} (target <= 0.1)")
    print(f"  retry_after_violations: {violations} (target <= ({concurrency} - 1) x 429s = "
          f"{(concurrency - 1) * throttled})")
    print(f"  accepted Graph rate   : {accepted:.1f} calls/s from 10 s to {t90:.0f} s (90% done) = "
          f"{accepted / args.limit:.2f} of the allowed rate (target >= 0.8); {refused:.3f} of them refused")
    print(f"  learned Graph rate    : {sampler.series(0, end_a)}")
    print(f"  accepted Graph calls/s: {sampler.rate_series('graph_ok', 0, end_a)}")
    print(f"  Exchange calls/s      : {sampler.rate_series('exchange_ok', 0, end_a)}")
    print(f"  unfinished users by step:\n    {sampler.step_series(0, end_a)}")
    routes = sorted(((sum(v.values()), route, v) for route, v in stats_a["requests"].items()), reverse=True)
    print("  calls by route        : " + "; ".join(f"{route} {dict(v)}" for _, route, v in routes[:12]))
    print(f"phase B: limit {args.up:g}/s at {t_up:.0f} s: a 5 s window at >= 0.8 x {args.up:g}/s, <= 10% refused, "
          f"ended {_secs(up_s)} after the change (target <= 30 s)")
    print(f"  learned Graph rate    : {sampler.series(t_up, t_down)}")
    print(f"phase C: limit {args.down:g}/s at {t_down:.0f} s: a 5 s window at >= 0.8 x {args.down:g}/s, "
          f"<= 10% refused, ended {_secs(down_s)} after the change (target <= 30 s)")
    print(f"  learned Graph rate    : {sampler.series(t_down, t_free)}")
    print(f"phases B+C users        : {states_b.get(kinds.SUCCEEDED, 0)}/{args.more} succeeded ({states_b}); "
          f"duplicate creates over the whole run {final.get('duplicate_create_attempts', 0)}")
    for (step, code, message), n in why.most_common(10):
        print(f"  failed: {n} x {step}: {code}: {message}")
    print("RESULT " + json.dumps({
        "users": args.users, "succeeded": states_a.get(kinds.SUCCEEDED, 0), "calls": calls, "throttled": throttled,
        "throttled_share": round(throttled / max(calls, 1), 4), "retry_after_violations": violations,
        "violations_bound": (concurrency - 1) * throttled, "accepted_rate": round(accepted, 2),
        "accepted_share": round(accepted / args.limit, 3), "up_s": up_s, "down_s": down_s,
        "more_succeeded": states_b.get(kinds.SUCCEEDED, 0),
        "duplicate_creates": final.get("duplicate_create_attempts", 0)}))
    ok = (states_a.get(kinds.SUCCEEDED) == args.users and states_b.get(kinds.SUCCEEDED, 0) == args.more
          and final.get("duplicate_create_attempts", 0) == 0)
    return 0 if ok else 1


def failures(world: Any, ids: list[str]) -> Counter[tuple[str, str, str]]:
    """Why requests failed: (step, error code, message without ids), counted."""
    from shared.requests import kinds

    return Counter((r.current_step or "", r.error_code or "", re.sub(r"[0-9a-f-]{36}|request_id=\S+", "…",
                                                                    r.error_message or "")[:160])
                   for r in world.requests(ids) if r.state == kinds.FAILED)


def _secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.0f} s"


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    raise SystemExit(main())
