"""Full sync of a 50,000-user tenant, then a delta sync with 100 changes; prints wall time and peak memory.

Memory is the growth of this process's peak resident set (ru_maxrss, the emulator runs in its own
process) over the sync; `--tracemalloc` also prints the peak of Python allocations (slower run).
Targets on this machine: full ≤ 15 s and ≤ 300 MB, delta ≤ 1 s. The database is a fresh one on its own
PostgreSQL cluster (tests/harness), or on the server --pg-url names.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
import tracemalloc
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emulator.testing import RunningEmulator, running_emulator
from tests.harness.databases import create_database, drop_database
from tests.harness.services import add_service_options, from_args

PARTNER = ("5a1e5a1e-0000-4000-8000-0000000be4c4", "bench-sync-app", "bench-sync-secret-value")
SKU = "O365_BUSINESS_ESSENTIALS"


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _seed_tenant(em: RunningEmulator, users: int) -> str:
    em.add_partner(*PARTNER)
    tenant = em.add_tenant(company_name="Bench", initial_domain="bench.onmicrosoft.com", gdap="active",
                           mca_signed=True, domains=[{"name": "bench.example", "verified": True}],
                           skus=[{"sku_part_number": SKU, "units": users + 1000}], consented_apps=[PARTNER[1]])
    with em.client(timeout=300) as http:
        http.post(f"/_emulator/tenants/{tenant['tenant_id']}/users:generate",
                  json={"count": users, "licensed_sku": SKU}).raise_for_status()
    return str(tenant["tenant_id"])


def _seed_customer(tenant_id: str) -> str:
    from shared.db.models import SyncPolicy
    from shared.db.uow import UnitOfWork
    from tests.builders import Builder, Licence

    with UnitOfWork() as uow:
        b = Builder(uow.session)
        provider = b.provider(pc_tenant_id=PARTNER[0], client_id=PARTNER[1], client_secret=PARTNER[2])
        plan = b.user_plan([Licence(SKU)], provider)
        customer = b.customer(provider, tenant_id=tenant_id, initial_domain="bench.onmicrosoft.com",
                              verified=("bench.example",), plans=[(plan, None)])
        uow.session.add(SyncPolicy(customer_id=customer.id, import_unknown_users=True, master="microsoft"))
        uow.commit()
        return customer.id


def _change_users(em: RunningEmulator, tenant_id: str, count: int) -> None:
    """`count` changes made in Entra: renames, usage locations and deletions."""
    with em.client(timeout=60) as http:
        listed = http.get(f"/_emulator/tenants/{tenant_id}").json()["users"][:count]
        for n, user in enumerate(listed):
            path = f"/_emulator/tenants/{tenant_id}/users/{user['id']}"
            if n % 10 == 0:
                http.delete(path).raise_for_status()
            else:
                http.patch(path, json={"displayName": f"Changed {n}", "usageLocation": "DE"}).raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--changes", type=int, default=100)
    parser.add_argument("--tracemalloc", action="store_true", help="also measure Python allocations (slower)")
    add_service_options(parser)
    args = parser.parse_args()
    with from_args(args, want_redis=False) as svc:
        measure(args, svc.pg_admin_url)


def measure(args: argparse.Namespace, pg_admin_url: str) -> None:
    db_name = "bench_sync_" + uuid.uuid4().hex[:8]
    db_url = create_database(pg_admin_url, db_name)
    try:
        with running_emulator() as em:
            os.environ.update(DATABASE_URL=db_url, ENVIRONMENT="test", MS_LOGIN_URL=em.url, MS_GRAPH_URL=em.url,
                              MS_PARTNER_CENTER_URL=em.url, MS_EXCHANGE_URL=em.url, MS_CA_BUNDLE=em.ca_path)
            os.environ.setdefault("SECRET_KEY", "bench-secret-key-" + "x" * 16)
            os.environ.pop("REDIS_URL", None)
            from shared.db.migrate import upgrade
            from shared.sync.engine import run_sync

            upgrade(db_url)
            t0 = time.perf_counter()
            tenant_id = _seed_tenant(em, args.users)
            customer_id = _seed_customer(tenant_id)
            print(f"seeded {args.users} users in {time.perf_counter() - t0:.1f} s")

            rss_before = _maxrss_mb()
            if args.tracemalloc:
                tracemalloc.start()
            t0 = time.perf_counter()
            full = run_sync(customer_id, full=True)
            full_s = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
            tracemalloc.stop()
            grown = _maxrss_mb() - rss_before
            full_peak_mb = _maxrss_mb()
            print(f"full sync: {full.state} created={full.created} updated={full.updated} "
                  f"removed={full.removed} error={full.error}")
            print(f"full sync wall time: {full_s:.2f} s (target <= 15 s)")
            print(f"full sync peak memory: +{grown:.0f} MB ru_maxrss growth, {_maxrss_mb():.0f} MB process peak"
                  + (f", {peak:.0f} MB tracemalloc peak" if peak is not None else "") + " (target <= 300 MB)")

            _change_users(em, tenant_id, args.changes)
            t0 = time.perf_counter()
            delta = run_sync(customer_id)
            delta_s = time.perf_counter() - t0
            print(f"delta sync: {delta.state} full={delta.full} created={delta.created} updated={delta.updated} "
                  f"removed={delta.removed} error={delta.error}")
            print(f"delta sync wall time ({args.changes} changes): {delta_s:.2f} s (target <= 1 s)")
            print("RESULT " + json.dumps({"users": args.users, "full_state": full.state, "full_s": round(full_s, 2),
                                          "rss_growth_mb": round(grown, 1), "process_peak_mb": round(full_peak_mb, 1),
                                          "delta_state": delta.state, "delta_s": round(delta_s, 3)}))
    finally:
        from shared.db.engine import dispose_engine

        dispose_engine()
        drop_database(pg_admin_url, db_name)


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
