"""CPU the engine spends per user, per step, in one process: no Celery, no threads, no other worker.

The end-to-end figure (provision_throughput.py) is bound by CPU on this 2-core VM, and what the workers
spend there is mostly the engine's (claims, step rows, ORM reads, Microsoft clients). This runs the same
chain for each user in-process, one link after the other, through the worker's own `Engine` and Microsoft
clients against the emulator over HTTPS, and counts this process's CPU time (`time.process_time`) per
step: the emulator and PostgreSQL run in their own processes and are not counted. A single thread
makes the figure steadier than the end-to-end one when the machine is shared.

    .venv/bin/python bench/engine_cpu.py [--users 300] [--tenants 3] [--pg-url URL] [--redis-url URL]

Prints CPU milliseconds per user and per step, then `RESULT {json}`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 16)

from tests.harness.services import add_service_options, from_args  # noqa: E402

BROKER_DB, LIMITER_DB = 8, 7
SKUS = ("O365_BUSINESS_ESSENTIALS", "FLOW_FREE")  # as provision_throughput.py: two licences per user
SETTINGS = {"LOG_LEVEL": "WARNING", "LOG_JSON": "false", "LEASE_SECONDS": "60", "REDRIVE_AFTER_S": "120",
            "MAILBOX_FIRST_DELAY_S": "0.2", "MAILBOX_MAX_DELAY_S": "2"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=3)
    add_service_options(parser)
    args = parser.parse_args()

    from emulator.testing import running_emulator
    from tests.harness.databases import create_database, drop_database

    with from_args(args) as svc:
        name = "bench_engine_" + uuid.uuid4().hex[:8]
        url = create_database(svc.pg_admin_url, name, migrate=True)
        try:
            with running_emulator() as emulator:
                env = _env(url, svc, emulator)
                return run(url, emulator, env, args)
        finally:
            from shared.db.engine import dispose_engine

            dispose_engine()
            drop_database(svc.pg_admin_url, name)


def _env(url: str, svc: object, emulator: object) -> dict[str, str]:
    from tests.harness.stack_env import stack_env

    return stack_env(database_url=url, broker_url=svc.redis_url(BROKER_DB),  # type: ignore[attr-defined]
                     limiter_url=svc.redis_url(LIMITER_DB), emulator=emulator,  # type: ignore[attr-defined,arg-type]
                     settings=SETTINGS)


def run(url: str, emulator: object, env: dict[str, str], args: argparse.Namespace) -> int:
    from shared.db.types import utcnow
    from shared.microsoft.factory import get_microsoft
    from shared.pipeline.engine import Engine
    from shared.requests import dispatch, kinds
    from shared.settings import get_settings
    from tests.harness.seeding import Seeder, quiet_emulator
    from tests.harness.stack_env import MICROSOFT_KEYS, SHARED_KEYS, publishing_as

    with publishing_as(env, keys=(*SHARED_KEYS, *MICROSOFT_KEYS)):
        dispatch.set_publisher(lambda refs: None)  # the chain is walked here, not sent
        seeder = Seeder(url, emulator)  # type: ignore[arg-type]
        _, refs = seeder.seed(args.tenants, args.users // args.tenants, skus=SKUS)
        quiet_emulator(emulator)  # type: ignore[arg-type]
        settings = get_settings()
        now_engine = Engine(get_microsoft(), settings=settings)
        # A step that asks for a short countdown (the first mailbox probe) runs again "later".
        later = Engine(now_engine.microsoft, settings=settings, clock=lambda: utcnow() + timedelta(seconds=30))
        per_step: dict[str, float] = defaultdict(float)
        steps = kinds.steps_of(kinds.USER_PROVISION)
        wall = time.monotonic()
        for ref in refs:
            for step in steps:
                engine = now_engine
                for _ in range(3):
                    started = time.process_time()
                    verdict = engine.run(ref.id, step, ref.dispatch)
                    per_step[step] += time.process_time() - started
                    if verdict.action != "retry":
                        break
                    engine = later
        wall = time.monotonic() - wall
        states = seeder.states([r.id for r in refs])
        seeder.close()
    done = states.get(kinds.SUCCEEDED, 0)
    total = sum(per_step.values())
    print(f"engine CPU per user: {total / len(refs) * 1000:.1f} ms ({done}/{len(refs)} users succeeded, "
          f"{len(refs) / wall:.1f} users/s on one thread)")
    print("per step: " + ", ".join(f"{s} {per_step[s] / len(refs) * 1000:.1f} ms" for s in steps))
    print("RESULT " + json.dumps({"users": len(refs), "succeeded": done,
                                  "cpu_ms_per_user": round(total / len(refs) * 1000, 2),
                                  "cpu_ms_per_step": {s: round(per_step[s] / len(refs) * 1000, 2) for s in steps}}))
    return 0 if done == len(refs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
