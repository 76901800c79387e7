"""The tenant's domains: the initial onmicrosoft.com one and the verified ones, as Graph lists them."""
from __future__ import annotations

from typing import Any

from shared.db.models import TenantConnection
from shared.pipeline.ports import Graph


def apply_domains(conn: TenantConnection, domains: list[dict[str, Any]]) -> None:
    initial = next((d["id"] for d in domains if d.get("isInitial")), None)
    if initial:
        conn.initial_domain = str(initial).lower()
    conn.verified_domains = sorted(str(d["id"]).lower() for d in domains if d.get("isVerified"))


def refresh_domains(conn: TenantConnection, graph: Graph) -> None:
    apply_domains(conn, graph.domains())


def domain_of(upn: str) -> str:
    return upn.rpartition("@")[2].lower()


def local_part(upn: str) -> str:
    return upn.rpartition("@")[0]


def is_verified(conn: TenantConnection, upn: str) -> bool:
    return domain_of(upn) in {d.lower() for d in conn.verified_domains or []}
