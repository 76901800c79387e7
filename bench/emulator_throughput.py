"""Graph GETs per second against the emulator with faults off; prints the figure (not a pass/fail test)."""
from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import signal
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from emulator.testing import running_emulator

PARTNER = {"tenant_id": "11111111-1111-1111-1111-111111111111", "client_id": "bench-app", "client_secret": "s3cret"}
TENANT = "22222222-2222-2222-2222-222222222222"


def _hammer(url: str, ca_path: str, token: str, user_ids: list[str], seconds: float, threads: int,
            out: multiprocessing.Queue[tuple[int, int]]) -> None:
    """One client process: `threads` keep-alive connections issuing GET /v1.0/users/{id} until time is up."""
    parts = urlsplit(url)
    context = ssl.create_default_context(cafile=ca_path)
    counts = [0] * threads
    errors = [0] * threads
    deadline = time.monotonic() + seconds

    def run(slot: int) -> None:
        conn = http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, context=context)
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        n = slot
        while time.monotonic() < deadline:
            conn.request("GET", f"/v1.0/users/{user_ids[n % len(user_ids)]}", headers=headers)
            response = conn.getresponse()
            response.read()
            if response.status == 200:
                counts[slot] += 1
            else:
                errors[slot] += 1
            n += threads
        conn.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put((sum(counts), sum(errors)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4, help="connections per process")
    parser.add_argument("--users", type=int, default=1000, help="users seeded in the tenant")
    args = parser.parse_args()
    with running_emulator() as emulator, emulator.client() as control:
        emulator.add_partner(**PARTNER)
        emulator.add_tenant(tenant_id=TENANT, company_name="Bench", initial_domain="bench.onmicrosoft.com",
                            skus=[{"sku_part_number": "O365_BUSINESS_ESSENTIALS", "units": args.users}],
                            consented_apps=[PARTNER["client_id"]])
        control.post(f"/_emulator/tenants/{TENANT}/users:generate",
                     json={"count": args.users, "licensed_sku": "O365_BUSINESS_ESSENTIALS"}).raise_for_status()
        users = [u["id"] for u in control.get(f"/_emulator/tenants/{TENANT}").json()["users"]]
        token = emulator.token(TENANT, PARTNER["client_id"], PARTNER["client_secret"])
        control.post("/_emulator/stats/reset").raise_for_status()
        queue: multiprocessing.Queue[tuple[int, int]] = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=_hammer, args=(emulator.url, emulator.ca_path, token, users,
                                                                args.seconds, args.threads, queue))
                 for _ in range(args.processes)]
        started = time.monotonic()
        for p in procs:
            p.start()
        results = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        elapsed = time.monotonic() - started
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        served = emulator.stats()["requests"].get("GET /v1.0/users/{id}", {})
    print(f"emulator throughput: {ok / elapsed:,.0f} Graph GETs/s "
          f"({ok} ok, {failed} not 200, {args.processes} processes x {args.threads} connections, "
          f"{elapsed:.1f} s, {os.cpu_count()} CPUs); server counted {served}")


if __name__ == "__main__":
    # SIGTERM (kill, pkill) as Ctrl-C: the finally blocks stop the workers and servers this started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
