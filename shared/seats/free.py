"""The free-seat rule, in one place: seats Microsoft sells and has enabled, less those consumed and those held.

Every count of free seats goes through here: the accept checks (shared.users.checks), the ledger and
its licence view (shared.seats.ledger), reserve_seat, assign_licences (on Graph's own numbers), and the
per-plan figure of the customer's Microsoft Online service.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def free_seats(total: int, consumed: int, held: int = 0) -> int:
    """Seats left: `held` are those reserved for accepted requests that have not licensed their user yet."""
    return total - consumed - held


def free_in_graph(sku: Mapping[str, Any]) -> int:
    """A Graph subscribedSku's free seats: prepaidUnits.enabled - consumedUnits (no holds: Graph knows none)."""
    return free_seats(int((sku.get("prepaidUnits") or {}).get("enabled", 0)), int(sku.get("consumedUnits", 0)))


def plan_free_seats(free_by_sku: Mapping[str, int], sku_part_numbers: Iterable[str]) -> int | None:
    """How many more users a plan can license: the scarcest of its SKUs (0 for a SKU the tenant lacks);
    None for a plan without licences."""
    parts = [p.upper() for p in sku_part_numbers]
    if not parts:
        return None
    free = {k.upper(): v for k, v in free_by_sku.items()}
    return max(0, min(free.get(p, 0) for p in parts))


def missing_skus(tenant_part_numbers: Iterable[str], sku_part_numbers: Iterable[str]) -> list[str]:
    """The plan's SKUs the tenant has no subscription for (part numbers compare case-insensitively)."""
    have = {p.upper() for p in tenant_part_numbers}
    return [p for p in dict.fromkeys(sku_part_numbers) if p.upper() not in have]
