"""What one worker process does in the multi-process limiter tests (importable by spawned children)."""
from __future__ import annotations

import threading
import time
from typing import Any

import redis

from shared.microsoft.limiter import Limits
from shared.microsoft.limiter_redis import RedisLimiter

IN_FLIGHT = "test:in-flight"


def hold_slots(url: str, key: str, limits: Limits, *, threads: int, start_at: float, seconds: float,
               write_every: int = 0) -> dict[str, Any]:
    """`threads` threads taking slots of `key` and holding each a few ms; a shared counter in Redis
    says how many calls of every process were inside at once, as each saw it."""
    client = redis.Redis.from_url(url)
    limiter = RedisLimiter(client, prefix="test:limit")
    seen: list[int] = []
    writes_seen: list[int] = []
    grants = [0] * threads

    def run(slot: int) -> None:
        n = 0
        while time.time() < start_at + seconds:
            write = bool(write_every) and n % write_every == 0
            grant = limiter.acquire(key, limits, write=write, max_wait=1.0, reserved=False)
            while grant.reason != "ok":
                time.sleep(min(grant.wait, 0.05) if grant.reason != "busy" else 0.002)
                grant = limiter.acquire(key, limits, write=write, max_wait=1.0, reserved=grant.holds_reservation)
            seen.append(int(client.incr(IN_FLIGHT)))
            if write:
                writes_seen.append(int(client.incr(IN_FLIGHT + ":writes")))
            time.sleep(0.003)
            if write:
                client.decr(IN_FLIGHT + ":writes")
            client.decr(IN_FLIGHT)
            limiter.release(key, limits, grant, "ok")
            grants[slot] += 1
            n += 1

    time.sleep(max(0.0, start_at - time.time()))
    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    client.close()
    return {"grants": sum(grants), "max_in_flight": max(seen, default=0),
            "max_writes": max(writes_seen, default=0)}


def report_429(url: str, key: str, limits: Limits, retry_after: float) -> None:
    """A call of `key` that Microsoft answered 429 + Retry-After, in this process."""
    limiter = RedisLimiter(redis.Redis.from_url(url), prefix="test:limit")
    grant = limiter.acquire(key, limits, write=False, max_wait=1.0, reserved=False)
    assert grant.reason == "ok", grant
    limiter.release(key, limits, grant, "throttled", retry_after)


def take_and_die(url: str, key: str, limits: Limits, slots: int) -> int:
    """Take `slots` call slots of `key` and end without giving them back, as a killed worker does."""
    limiter = RedisLimiter(redis.Redis.from_url(url))
    taken = [limiter.acquire(key, limits, write=False, max_wait=1.0, reserved=False) for _ in range(slots)]
    return sum(1 for g in taken if g.reason == "ok")


def read_skus_twice(settings_values: dict[str, Any], partner: tuple[str, str, str], tenant_id: str) -> list[str]:
    """A worker reading a tenant's SKUs from Partner Center twice (as the licence view does) through the
    product's clients: what each read ended with."""
    from shared.microsoft.credentials import PartnerCredential
    from shared.microsoft.errors import MicrosoftError
    from shared.microsoft.factory import MicrosoftClients
    from shared.settings import Settings

    clients = MicrosoftClients(Settings(**settings_values))
    partner_center = clients.partner_center(PartnerCredential(*partner))
    outcomes = []
    for _ in range(2):
        try:
            partner_center.subscribed_skus(tenant_id)
            outcomes.append("ok")
        except MicrosoftError as exc:
            outcomes.append(f"{type(exc).__name__} {exc.status} {getattr(exc, 'retry_after', None)}")
    clients.close()
    return outcomes
