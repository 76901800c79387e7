"""The raw Celery ceiling: chains of no-op tasks as long as a user's provisioning chain, on the product's
broker and worker settings.

The reference for the end-to-end provisioning rate (bench/provision_throughput.py): a Redis broker
(its own redis-server, or the one --redis-url names: db 6, flushed), the same Celery configuration
(worker.app.celery_config: acks late, prefetch 1, events on, the provisioning queue, ...) and the same
workers (default 2 x `-P threads -c 4`), but every task does nothing, so what is left is Celery's own
cost per message on this machine. Chains are published as worker.canvas publishes requests (one
producer connection, immutable signatures); the last link of each chain increments a Redis counter so
the bench knows when all are done.

    .venv/bin/python bench/celery_ceiling.py [--chains 1500] [--workers 2] [--pool threads] [--concurrency 4]
                                             [--redis-url URL]

Prints the chains and tasks per second, then `RESULT {json}`.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from celery import Celery, chain  # noqa: E402

from shared.requests import kinds  # noqa: E402
from tests.harness.services import add_service_options, from_args  # noqa: E402

# One no-op task per step of user.provision, so the ceiling is the same number of messages a user costs.
LINKS = len(kinds.steps_of(kinds.USER_PROVISION))
NOOP, LAST = "bench.ceiling.noop", "bench.ceiling.last"
COUNTER = "bench:ceiling:done"
BROKER_DB = 6


def make_app() -> Celery:
    """A tiny app on the product's Celery configuration (worker.app.celery_config) and broker."""
    from shared.settings import get_settings
    from worker.app import celery_config

    settings = get_settings()
    app = Celery("bench_ceiling", set_as_current=False)
    config = celery_config(settings)
    config["beat_schedule"] = {}
    app.config_from_object(config)
    counter = redis.Redis.from_url(settings.broker_url)

    @app.task(name=NOOP, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
    def noop(i: str) -> None:
        return None

    @app.task(name=LAST, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
    def last(i: str) -> None:
        counter.incr(COUNTER)

    return app


def worker_main(argv: list[str]) -> None:
    make_app().worker_main(["worker", *argv])


def wait_workers(app: Celery, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=0.5) or []) >= n:
            return
    raise SystemExit(f"only {len(app.control.ping(timeout=0.5) or [])} of {n} workers answered")


def measure(args: argparse.Namespace, env: dict[str, str], broker: redis.Redis, log: IO[bytes],
            ) -> tuple[int, float, float]:
    """Start the workers, publish the chains, wait for their last links: (chains done, wall s, publish s)."""
    procs = [subprocess.Popen([sys.executable, __file__, "worker", "-P", args.pool, "-c", str(args.concurrency),
                               "-Q", "provisioning", "-n", f"ceiling{n}-{uuid.uuid4().hex[:6]}@%h",
                               "--without-mingle", "--without-gossip", "-l", "WARNING"],
                              env=env, cwd=ROOT, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
             for n in range(args.workers)]
    try:
        app = make_app()
        try:
            wait_workers(app, args.workers)
        except SystemExit:
            log.seek(0)
            print(log.read().decode(errors="replace")[-4000:], file=sys.stderr)
            raise
        started = time.monotonic()
        with app.producer_or_acquire() as producer:
            for n in range(args.chains):
                ref = str(n)
                links = [app.signature(NOOP, args=(ref,), immutable=True, queue="provisioning")
                         for _ in range(LINKS - 1)]
                links.append(app.signature(LAST, args=(ref,), immutable=True, queue="provisioning"))
                chain(*links).apply_async(producer=producer)
        published = time.monotonic() - started
        deadline = started + args.timeout
        done = 0
        while done < args.chains and time.monotonic() < deadline:
            time.sleep(0.05)
            done = int(broker.get(COUNTER) or 0)
        wall = time.monotonic() - started
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        broker.flushdb()
    return done, wall, published


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chains", type=int, default=1500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=240)
    add_service_options(parser)
    args = parser.parse_args()

    with from_args(args, want_postgres=False) as svc:
        broker_url = svc.redis_url(BROKER_DB)
        env = {**os.environ, "BROKER_URL": broker_url, "ENVIRONMENT": "test", "LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(ROOT)}
        env.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 16)
        os.environ.update({k: env[k] for k in ("BROKER_URL", "ENVIRONMENT", "LOG_LEVEL", "SECRET_KEY")})
        broker = redis.Redis.from_url(broker_url)
        broker.flushdb()
        with tempfile.TemporaryFile() as log:  # the workers' banners and warnings, shown if they do not answer
            done, wall, published = measure(args, env, broker, log)
        broker.close()
    rate = done / wall
    print(f"celery ceiling: {done}/{args.chains} chains of {LINKS} no-op tasks in {wall:.1f} s "
          f"(published in {published:.1f} s) = {rate:.1f} chains/s = {rate * LINKS:.0f} tasks/s "
          f"on {args.workers} x -P {args.pool} -c {args.concurrency}, {os.cpu_count()} CPUs")
    print("RESULT " + json.dumps({"chains": args.chains, "done": done, "links": LINKS, "wall_s": round(wall, 2),
                                  "chains_per_s": round(rate, 2), "tasks_per_s": round(rate * LINKS, 1),
                                  "workers": args.workers, "pool": args.pool, "concurrency": args.concurrency}))
    return 0 if done == args.chains else 1


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker_main(sys.argv[2:])
    else:
        raise SystemExit(main())
