"""Users provisioned per second, end to end, against the emulator with faults off.

Its own PostgreSQL cluster and redis-server (tests/harness; or the servers named by --pg-url and
--redis-url: a fresh database there, Redis dbs 8 and 7 flushed), the emulator with no latency, errors,
throttling or mailbox delay, and real processes: by default two
`provisioner worker -P threads -c 4` and one `provisioner beat`. 300 user.provision requests over three
tenants (two licences and one alias per user) are created as the API accepts them and published; the
clock runs from the publish to the last request succeeded. Each user is the whole chain: reserve_seat,
ensure_user (create), assign_licences, wait_mailbox (a short Celery retry until the mailbox shows),
apply_aliases, notify.

Compare with bench/celery_ceiling.py (the same broker, Celery settings and workers, no-op tasks).

    .venv/bin/python bench/provision_throughput.py [--users 300] [--tenants 3] [--workers 2] [--concurrency 4]
                                                   [--pg-url URL] [--redis-url URL]

Prints the figure, then `RESULT {json}`.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 16)

from emulator.testing import RunningEmulator  # noqa: E402
from tests.harness.services import Services, add_service_options, from_args  # noqa: E402

BROKER_DB, LIMITER_DB = 8, 7
# A mailbox licence and one without (as the drills): each user costs two seats and two licences.
SKUS = ("O365_BUSINESS_ESSENTIALS", "FLOW_FREE")

# Nothing fails here, so nothing needs re-driving quickly: leases and the re-drive clock stay far above
# the time a message waits in the queue. Mailbox probes start 0.2 s after licensing (the mailbox is
# there at once), and the reconciler looks every second.
BENCH_SETTINGS = {"LOG_LEVEL": "WARNING", "LOG_JSON": "false", "LEASE_SECONDS": "60", "REDRIVE_AFTER_S": "120",
                  "RECONCILE_INTERVAL_S": "1", "MAILBOX_FIRST_DELAY_S": "0.2", "MAILBOX_MAX_DELAY_S": "2"}


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        children = Path(f"/proc/{p}/task/{p}/children")
        if children.exists():
            todo += [int(c) for c in children.read_text().split()]
    return pids


def _cpu(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def _all_postgres_pids() -> list[int]:
    """Every PostgreSQL process of the machine (a server named by --pg-url is not ours to tell apart)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if d.joinpath("comm").read_text().strip() in ("postgres", "postmaster"):
                    pids.append(int(d.name))
            except OSError:
                continue
    return pids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--tenants", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", default="threads")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=300)
    add_service_options(parser)
    args = parser.parse_args()

    from emulator.testing import running_emulator
    from tests.harness.databases import create_database, drop_database

    with from_args(args) as svc:
        name = "bench_e2e_" + uuid.uuid4().hex[:8]
        url = create_database(svc.pg_admin_url, name, migrate=True)
        try:
            with running_emulator() as emulator:
                return run(url, emulator, svc, args)
        finally:
            from shared.db.engine import dispose_engine

            dispose_engine()
            drop_database(svc.pg_admin_url, name)


def run(url: str, emulator: RunningEmulator, svc: Services, args: argparse.Namespace) -> int:
    from shared.requests import kinds
    from tests.harness.processes import Processes
    from tests.harness.seeding import Seeder, quiet_emulator
    from tests.harness.stack_env import DRILL, publishing_as, stack_env

    env = stack_env(database_url=url, broker_url=svc.redis_url(BROKER_DB), limiter_url=svc.redis_url(LIMITER_DB),
                    emulator=emulator, settings={**DRILL, **BENCH_SETTINGS})
    with publishing_as(env):
        from worker.canvas import publish

        seeder = Seeder(url, emulator)
        tenants, refs = seeder.seed(args.tenants, args.users // args.tenants, skus=SKUS)
        ids = [r.id for r in refs]
        svc.flush_redis(BROKER_DB, LIMITER_DB)
        quiet_emulator(emulator)
        postgres_pids = svc.postgres_pids if svc.postgres else _all_postgres_pids
        with Processes(env) as stack:
            for n in range(args.workers):
                stack.worker(f"w{n}", pool=args.pool, concurrency=args.concurrency, loglevel="WARNING")
            stack.beat(loglevel="WARNING")
            stack.answering(args.workers)
            groups = {"workers": lambda: [p for n in range(args.workers) for p in _tree(stack.procs[f"w{n}"].pid)],
                      "beat": lambda: _tree(stack.procs["beat"].pid),
                      "emulator": lambda: [emulator.process.pid],
                      "postgres": postgres_pids, "this process": lambda: [os.getpid()]}
            before = {k: _cpu(f()) for k, f in groups.items()}
            busy_before = _machine_busy()
            started = time.monotonic()
            publish(refs)
            states = seeder.wait(ids, timeout=args.timeout)
            wall = time.monotonic() - started
            cpu = {k: _cpu(f()) - before[k] for k, f in groups.items()}
            cpu["everything else"] = max(0.0, _machine_busy() - busy_before - sum(cpu.values()))
        seeder.close()
        svc.flush_redis(BROKER_DB, LIMITER_DB)
    stats = emulator.stats()
    ours = [stats["by_tenant"].get(t.tenant_id, {}) for t in tenants]
    done = states.get(kinds.SUCCEEDED, 0)
    rate = done / wall
    print(f"end-to-end provisioning: {done}/{len(ids)} users succeeded in {wall:.1f} s = {rate:.2f} users/s "
          f"({args.workers} x -P {args.pool} -c {args.concurrency}, faults off, {os.cpu_count()} CPUs); "
          f"users created {sum(o.get('users_created', 0) for o in ours)}, "
          f"duplicate creates {sum(o.get('duplicate_create_attempts', 0) for o in ours)}")
    print("CPU seconds during the run: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())
          + f" (of {wall * (os.cpu_count() or 1):.1f} available); per user: "
          + ", ".join(f"{k} {v / max(done, 1) * 1000:.0f} ms" for k, v in cpu.items()))
    print("RESULT " + json.dumps({"users": len(ids), "succeeded": done, "wall_s": round(wall, 2),
                                  "users_per_s": round(rate, 3), "workers": args.workers, "pool": args.pool,
                                  "concurrency": args.concurrency, "states": states,
                                  "cpu_s": {k: round(v, 2) for k, v in cpu.items()}}))
    return 0 if done == len(ids) else 1


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    raise SystemExit(main())
