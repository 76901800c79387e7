"""`fair_caller`: every authenticated /v1 route charges the caller's key and the customer it names."""
from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from api.deps import PrincipalDep
from shared import fair_use
from shared.auth.principal import CUSTOMER


async def fair_caller(request: Request, who: PrincipalDep) -> None:
    # The customer a call is about, without a database read: a customer key's own, else the path's.
    customer_id = who.scope_id if who.role == CUSTOMER else request.path_params.get("customer_id")
    # A (blocking) Redis round trip: off the event loop.
    await run_in_threadpool(fair_use.check, who.key_id, customer_id)
