"""Bench: how fast the API accepts provisioning work (prints figures; not a timed test).

Starts the API (`provisioner api --workers 2`) on a fresh database of its own PostgreSQL cluster with its
own redis-server as the broker (tests/harness; or the servers --pg-url and --redis-url name: a fresh
database there, Redis db 10 flushed after; no worker consuming), seeds a connected customer with plenty of
seats and users, then prints:

  1. accepted provisioning requests/s with 50 concurrent clients    (target >= 400/s)
  2. p50/p99 latency of the same call with 8 concurrent clients      (target p99 <= 50 ms)
  3. the time to accept one 1,000-user bulk call                      (target <= 2 s)

The load generator is a minimal asyncio HTTP/1.1 keep-alive client, so on a 2-core machine the
client costs the server as little CPU as possible.

    .venv/bin/python bench/api_accept.py [--seconds 10] [--workers 2] [--pg-url URL] [--redis-url URL]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.databases import create_database, drop_database  # noqa: E402
from tests.harness.processes import Processes  # noqa: E402
from tests.harness.services import add_service_options, from_args  # noqa: E402

SKU = "O365_BUSINESS_PREMIUM"
BROKER_DB = 10


# -- the world ----------------------------------------------------------------------------------------------------
def seed(url: str, users: int) -> dict[str, Any]:
    """A reseller with both services, a connected customer (MCA signed, plan enabled, a million seats), users."""
    from shared.auth.keys import create_key
    from shared.db.models import User
    from shared.db.types import new_id, utcnow
    from shared.db.uow import UnitOfWork
    from shared.settings import reset_settings
    from tests.builders import Builder, Licence, Sku

    os.environ["DATABASE_URL"] = url
    reset_settings()
    from shared.db.engine import dispose_engine

    dispose_engine()
    with UnitOfWork() as uow:
        b = Builder(uow.session)
        sp = b.provider()
        cplan = b.customer_plan(sp)
        plan = b.user_plan([Licence(SKU)], sp)
        customer = b.customer(sp, skus=[Sku(SKU, total=1_000_000)], plans=[(plan, None)])
        customer.customer_plan_id = cplan.id
        uow.session.execute(text("UPDATE tenant_skus SET refreshed_at = now() WHERE customer_id = :c"),
                            {"c": customer.id})
        now = utcnow()
        ids = [new_id() for _ in range(users)]
        uow.session.execute(insert(User.__table__), [  # type: ignore[arg-type]
            {"id": i, "customer_id": customer.id, "upn": f"bench{n:06d}@contoso.com", "first_name": "Bench",
             "last_name": f"User {n}", "display_name": f"Bench User {n}", "usage_location": "GB", "aliases": [],
             "state": "active", "source": "local", "licences": [], "created_at": now, "updated_at": now}
            for n, i in enumerate(ids)])
        key = create_key(uow.session, "operator", None, name="bench")
        world = {"customer_id": customer.id, "plan_id": plan.id, "user_ids": ids, "key": key}
        uow.commit()
    dispose_engine()
    return world


# -- a tiny keep-alive HTTP/1.1 client --------------------------------------------------------------------------
class Conn:
    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port, self.key = host, port, key
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        data = orjson.dumps(body) if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        self.writer.write(head + data)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        payload = await self.reader.readexactly(length) if length else b""
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def provision_loop(conn: Conn, users: list[str], budget: list[int], plan: str, stop_at: float,
                         latencies: list[float], codes: dict[int, int]) -> None:
    """Provision one fresh user after another until the time or the call budget is spent."""
    while users and budget[0] > 0 and time.perf_counter() < stop_at:
        budget[0] -= 1
        user = users.pop()
        started = time.perf_counter()
        status, body = await conn.request("PUT", f"/v1/users/{user}/services/microsoft-online",
                                          {"user_plan_id": plan})
        latencies.append(time.perf_counter() - started)
        codes[status] = codes.get(status, 0) + 1
        if status != 202 and codes[status] <= 3:
            print(f"  unexpected {status}: {body[:200]!r}", file=sys.stderr)


async def run_phase(port: int, key: str, users: list[str], plan: str, clients: int, seconds: float,
                    limit: int = 10**9) -> tuple[int, float, list[float], dict[int, int]]:
    conns = [Conn("127.0.0.1", port, key) for _ in range(clients)]
    latencies: list[float] = []
    codes: dict[int, int] = {}
    budget = [limit]
    started = time.perf_counter()
    await asyncio.gather(*(provision_loop(c, users, budget, plan, started + seconds, latencies, codes)
                           for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return codes.get(202, 0), elapsed, latencies, codes


async def bulk_call(port: int, key: str, customer_id: str, plan: str, n: int) -> tuple[int, float]:
    conn = Conn("127.0.0.1", port, key)
    users = [{"upn": f"bulk{uuid.uuid4().hex[:12]}@contoso.com", "first_name": "Bulk", "last_name": f"User {i}",
              "usage_location": "GB", "aliases": [f"alias{i}.{uuid.uuid4().hex[:6]}@contoso.com"]} for i in range(n)]
    started = time.perf_counter()
    status, _ = await conn.request("POST", f"/v1/customers/{customer_id}/users:bulk",
                                   {"user_plan_id": plan, "users": users})
    elapsed = time.perf_counter() - started
    conn.close()
    return status, elapsed


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used so far (Linux /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in
                                                              Path("/proc/stat").read_text().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def server_pids(api: subprocess.Popen[bytes], db: str, url: str) -> tuple[list[int], list[int]]:
    """(the API's processes, the PostgreSQL backends serving the bench database)."""
    api_pids, todo = [], [api.pid]
    while todo:
        pid = todo.pop()
        api_pids.append(pid)
        todo += map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split())
    engine = create_engine(url)
    with engine.connect() as c:
        backends = [r[0] for r in c.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND "
                                                 "pid <> pg_backend_pid()"), {"d": db})]
    engine.dispose()
    return api_pids, backends


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the 50-client phase")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--users", type=int, default=15_000)
    add_service_options(ap)
    args = ap.parse_args()

    with from_args(args) as svc:
        db = "bench_" + uuid.uuid4().hex[:8]
        url = create_database(svc.pg_admin_url, db, migrate=True)
        broker = svc.redis_url(BROKER_DB)
        # The product's own command, as compose and Kubernetes run it.
        env = {**os.environ, "DATABASE_URL": url, "BROKER_URL": broker, "ENVIRONMENT": "production",
               "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-secret-" + uuid.uuid4().hex), "LOG_LEVEL": "WARNING",
               # Production requires METRICS_TOKEN of the API; 50 clients on one key are far past a fair share.
               "METRICS_TOKEN": "bench-metrics-" + uuid.uuid4().hex, "API_RATE_PER_KEY": "0",
               "API_RATE_PER_CUSTOMER": "0", "PYTHONPATH": str(ROOT)}
        os.environ["SECRET_KEY"] = env["SECRET_KEY"]
        os.environ["ENVIRONMENT"] = "production"
        try:
            world = seed(url, args.users)
            with Processes(env) as procs:
                port = procs.api(workers=args.workers)
                measure(args, procs.procs["api"], port, world, db, url)
        finally:
            from shared.db.engine import dispose_engine

            dispose_engine()
            drop_database(svc.pg_admin_url, db)
            svc.flush_redis(BROKER_DB)  # nothing consumes the bench's messages


def measure(args: argparse.Namespace, api: subprocess.Popen[bytes], port: int, world: dict[str, Any], db: str,
            url: str) -> None:
    users = list(world["user_ids"])
    key, plan = world["key"], world["plan_id"]

    asyncio.run(run_phase(port, key, users, plan, 50, 3.0, limit=1000))  # warm-up: pools, prepared statements
    api_pids, pg_pids = server_pids(api, db, url)
    before = (cpu_seconds(api_pids), cpu_seconds(pg_pids), machine_busy_seconds())
    accepted, elapsed, lat50, codes = asyncio.run(run_phase(port, key, users, plan, 50, args.seconds))
    ours = cpu_seconds(api_pids) - before[0] + cpu_seconds(pg_pids) - before[1]
    api_cpu = (cpu_seconds(api_pids) - before[0]) / max(accepted, 1) * 1000
    pg_cpu = (cpu_seconds(pg_pids) - before[1]) / max(accepted, 1) * 1000
    others = max(0.0, machine_busy_seconds() - before[2] - ours) / elapsed
    print(f"50 clients: {accepted} accepted in {elapsed:.1f}s = {accepted / elapsed:.0f} requests/s "
          f"(p50 {pct(lat50, 0.5):.1f} ms, p99 {pct(lat50, 0.99):.1f} ms) statuses {codes}   target >= 400/s")
    cpus = os.cpu_count() or 1
    print(f"            CPU per accepted request: API {api_cpu:.2f} ms + PostgreSQL {pg_cpu:.2f} ms; "
          f"everything else on the machine (bench client included) used {others:.2f} of {cpus} CPUs; "
          f"CPU-bound ceiling with all {cpus} CPUs: {cpus * 1000 / (api_cpu + pg_cpu):.0f} requests/s")
    n8 = min(2000, len(users))
    _, elapsed8, lat8, codes8 = asyncio.run(run_phase(port, key, users, plan, 8, 120.0, limit=n8))
    print(f" 8 clients: {len(lat8)} calls, {len(lat8) / elapsed8:.0f}/s, p50 {pct(lat8, 0.5):.1f} ms, "
          f"p99 {pct(lat8, 0.99):.1f} ms, mean {statistics.mean(lat8) * 1000:.1f} ms statuses {codes8}"
          f"   target p99 <= 50 ms")
    status, took = asyncio.run(bulk_call(port, key, world["customer_id"], plan, 1000))
    print(f"bulk: 1,000 users accepted in {took:.2f}s (status {status})   target <= 2 s")
    print("RESULT " + json.dumps({
        "rate_50": round(accepted / elapsed, 1), "p50_50_ms": round(pct(lat50, 0.5), 1),
        "p99_50_ms": round(pct(lat50, 0.99), 1), "cpu_ceiling_rate": round(cpus * 1000 / (api_cpu + pg_cpu), 1),
        "rate_8": round(len(lat8) / elapsed8, 1), "p99_8_ms": round(pct(lat8, 0.99), 1),
        "bulk_1000_s": round(took, 2), "bulk_status": status}))


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
