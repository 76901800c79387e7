"""Two worker processes on one throttled tenant: achieved share of the emulator's allowed rate, violations.

The shared limiter lives in Redis: its own redis-server (tests/harness), or db 12 of the one --redis-url names.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import redis

from emulator.testing import running_emulator
from tests.harness.services import add_service_options, from_args
from tests.shared.microsoft.ms_emulator import hammer, seed

LIMITER_DB = 12


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=50.0, help="emulator graph_rate_per_tenant (calls/s)")
    parser.add_argument("--client-share", type=float, default=0.95,
                        help="our graph_rate_per_tenant as a share of --rate (the configured headroom)")
    parser.add_argument("--burst", type=float, default=5.0, help="our graph_burst_per_tenant")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="threads per process")
    parser.add_argument("--seconds", type=float, default=10.0)
    add_service_options(parser)
    args = parser.parse_args()
    with from_args(args, want_postgres=False) as svc:
        return measure(args, svc.redis_url(LIMITER_DB))


def measure(args: argparse.Namespace, redis_url: str) -> int:
    with redis.Redis.from_url(redis_url) as limiter_db:
        limiter_db.flushdb()
    overrides = {"redis_url": redis_url, "graph_rate_per_tenant": args.rate * args.client_share,
                 "graph_burst_per_tenant": args.burst, "retry_budget_s": 30.0}
    with running_emulator() as emulator:
        world = seed(emulator, graph_rate_per_tenant=args.rate)
        start_at = time.time() + 3.0
        with ProcessPoolExecutor(args.processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(hammer, world, overrides, threads=args.threads, start_at=start_at,
                                   seconds=args.seconds) for _ in range(args.processes)]
            results = [f.result() for f in futures]
        stats = emulator.stats()

    ok = sum(r["ok"] for r in results)
    achieved = ok / (results[0]["end"] - min(r["started"] for r in results))
    print(f"emulator allowed rate : {args.rate:.1f} calls/s per tenant")
    print(f"client configured rate: {args.rate * args.client_share:.1f} calls/s (burst {args.burst:g})")
    print(f"processes x threads   : {args.processes} x {args.threads}, {args.seconds:g} s")
    print(f"calls per process     : {[r['ok'] for r in results]}  failures: {[r['failures'] for r in results]}")
    print(f"achieved rate         : {achieved:.1f} calls/s = {achieved / args.rate:.2f} of the allowed rate")
    print(f"throttled (429)       : {stats['throttled']}")
    print(f"retry_after_violations: {stats['retry_after_violations']}")
    print("RESULT " + json.dumps({"allowed_rate": args.rate, "achieved_rate": round(achieved, 2),
                                  "share": round(achieved / args.rate, 3), "throttled": stats["throttled"],
                                  "retry_after_violations": stats["retry_after_violations"]}))
    return 0 if stats["retry_after_violations"] == 0 else 1


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
