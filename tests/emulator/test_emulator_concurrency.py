"""100 concurrent clients creating users and licensing them: no negative seats, no UPN twice."""
from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from .emulator_world import BASIC_SKU_ID, World, new_user

CLIENTS = 100
DISTINCT_UPNS = 50
SEATS = 30


async def _client_run(client: httpx.AsyncClient, n: int) -> int:
    upn = f"racer{n % DISTINCT_UPNS}@contoso.com"
    created = await client.post("/v1.0/users", json=new_user(upn, usageLocation="NL"))
    if created.status_code == 201:
        uid = created.json()["id"]
    else:
        found = await client.get("/v1.0/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
        uid = found.json()["value"][0]["id"]
    body = {"addLicenses": [{"skuId": BASIC_SKU_ID, "disabledPlans": []}], "removeLicenses": []}
    return (await client.post(f"/v1.0/users/{uid}/assignLicense", json=body)).status_code


async def _race(world: World, token: str) -> list[int]:
    limits = httpx.Limits(max_connections=CLIENTS)
    async with world.emulator.async_client(headers={"Authorization": f"Bearer {token}"}, limits=limits) as client:
        return await asyncio.gather(*(_client_run(client, n) for n in range(CLIENTS)))


def test_seats_and_upns_hold_under_concurrency(world: World) -> None:
    world.control().patch(f"/_emulator/tenants/{world.tenant_id}",
                          json={"skus": [{"sku_part_number": "O365_BUSINESS_ESSENTIALS", "units": SEATS}]})
    statuses = asyncio.run(_race(world, world.token()))
    assert set(statuses) <= {200, 400}
    tenant = world.emulator.tenant(world.tenant_id)
    sku = tenant["skus"][0]
    licensed = [u for u in tenant["users"] if u["assignedLicenses"]]
    assert 0 <= sku["consumed"] == len(licensed) == SEATS and sku["free"] == 0
    upns = Counter(u["userPrincipalName"].lower() for u in tenant["users"])
    assert max(upns.values()) == 1 and len(upns) == DISTINCT_UPNS + 1
    stats = world.emulator.stats()
    assert stats["users_created"] == DISTINCT_UPNS
    assert stats["duplicate_create_attempts"] == CLIENTS - DISTINCT_UPNS
    assert stats["licence_assignments"] == SEATS
