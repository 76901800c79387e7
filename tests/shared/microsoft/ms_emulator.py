"""Helpers for the clients' emulator tests: a seeded world, settings pointing at it, a hammering worker."""
from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import MicrosoftError
from shared.microsoft.factory import MicrosoftClients
from shared.settings import Settings

PARTNER_TENANT = "11111111-1111-1111-1111-111111111111"
CLIENT_ID = "clients-test-app"
CLIENT_SECRET = "clients-test-secret-value"
BASIC = "O365_BUSINESS_ESSENTIALS"
USERS = [f"user{i}@contoso.com" for i in range(8)]


@dataclass(frozen=True)
class Seeded:
    url: str
    ca_path: str
    tenant_id: str

    @property
    def credential(self) -> PartnerCredential:
        return PartnerCredential(PARTNER_TENANT, CLIENT_ID, CLIENT_SECRET)


def seed(emulator: Any, **faults: Any) -> Seeded:
    """Reset the emulator, add the partner app and one customer tenant (GDAP active, the app consented)."""
    emulator.reset()
    emulator.add_partner(PARTNER_TENANT, CLIENT_ID, CLIENT_SECRET)
    tenant = emulator.add_tenant(
        company_name="Contoso", initial_domain="contoso.onmicrosoft.com",
        domains=[{"name": "contoso.com", "verified": True}, {"name": "pending.example", "verified": False}],
        skus=[{"sku_part_number": BASIC, "units": 3}], mca_signed=False, gdap="active",
        users=[{"userPrincipalName": upn, "usageLocation": "NL"} for upn in USERS], consented_apps=[CLIENT_ID],
    )
    if faults:
        emulator.set_faults(**faults)
    return Seeded(emulator.url, emulator.ca_path, tenant["tenant_id"])


def settings_for(world: Seeded, **overrides: Any) -> Settings:
    """Every Microsoft root at the emulator, its CA trusted; everything else as given."""
    values: dict[str, Any] = {
        "environment": "test", "ms_login_url": world.url, "ms_graph_url": world.url,
        "ms_partner_center_url": world.url, "ms_exchange_url": world.url, "ms_ca_bundle": world.ca_path,
        "redis_url": None, **overrides,
    }
    return Settings(**values)


def hammer(world: Seeded, settings_overrides: dict[str, Any], *, threads: int, start_at: float,
           seconds: float) -> dict[str, Any]:
    """One worker process: `threads` threads reading users of the tenant from `start_at` for `seconds`.

    Returns the calls that succeeded inside the window, failures by type, and when it really started.
    """
    clients = MicrosoftClients(settings_for(world, **settings_overrides))
    graph = clients.graph(world.credential, world.tenant_id)
    graph.find_user_by_upn(USERS[0])  # sign in and open a connection before the clock starts
    ok = [0] * threads
    failures: Counter[str] = Counter()
    lock = threading.Lock()

    def run(slot: int) -> None:
        n, end = slot, start_at + seconds
        while time.time() < end:
            try:
                graph.get_user(USERS[n % len(USERS)], select=["id"])
                # Only calls finished inside the window count: the measured rate is never flattered.
                ok[slot] += time.time() <= end
            except MicrosoftError as exc:
                with lock:
                    failures[type(exc).__name__] += 1
            n += 1

    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()  # later than start_at when this process was slow to start
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    clients.close()
    return {"ok": sum(ok), "failures": dict(failures), "started": started, "end": start_at + seconds}
