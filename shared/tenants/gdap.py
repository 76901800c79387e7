"""GDAP as the engine judges it: the partner's relationships with a tenant, their status, roles and end."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest, User
from shared.pipeline.ports import Graph
from shared.requests import kinds
from shared.tenants import roles
from shared.tenants.roles import Need

# Relationship states in which the partner's GDAP roles still work.
ACTIVE = frozenset({"active", "expiring"})
# A relationship ending sooner than this is reported (it must be extended or renewed in time).
EXPIRY_WARNING = timedelta(days=14)


@dataclass(frozen=True)
class Relationship:
    id: str
    name: str
    status: str
    roles: tuple[str, ...]
    ends: datetime | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


@dataclass(frozen=True)
class Gdap:
    """Every relationship between the partner and one customer tenant."""

    relationships: tuple[Relationship, ...]

    @property
    def active(self) -> list[Relationship]:
        return [r for r in self.relationships if r.active]

    @property
    def status(self) -> str:
        if self.active:
            return "active"
        return sorted(r.status for r in self.relationships)[0] if self.relationships else "none"

    @property
    def roles(self) -> list[str]:
        """Role template ids the active relationships grant between them."""
        return sorted({role for r in self.active for role in r.roles})

    @property
    def ends(self) -> datetime | None:
        """When the last active relationship ends (access lasts that long)."""
        ends = [r.ends for r in self.active if r.ends is not None]
        return max(ends) if ends else None

    def missing(self, needs: Iterable[Need]) -> list[Need]:
        return roles.missing(needs, self.roles)

    def allows(self, needs: Iterable[Need]) -> bool:
        """An active relationship grants every need (and some role at all: reading needs one)."""
        return bool(self.active) and bool(self.roles) and not self.missing(needs)

    def expiring(self, now: datetime) -> list[Relationship]:
        return [r for r in self.active
                if r.status == "expiring" or (r.ends is not None and r.ends - now <= EXPIRY_WARNING)]


def needs_of(session: Session, req: ProvisioningRequest, step: str) -> list[Need]:
    """What the request's `step` needs granted: check_gdap the whole connection, others their own work."""
    if step == "check_gdap":
        return roles.for_connection(aliases=aliases_asked(session, req))
    need = roles.for_step(step)
    return [need] if need else []


def aliases_asked(session: Session, req: ProvisioningRequest) -> bool:
    """An onboarding whose users have aliases needs Exchange Administrator from the start."""
    if req.kind != kinds.CUSTOMER_ONBOARD:
        return False
    found = session.scalars(select(User.aliases).join(ProvisioningRequest, ProvisioningRequest.user_id == User.id)
                            .where(ProvisioningRequest.parent_id == req.id))
    return any(found)


def read(graph: Graph, customer_tenant_id: str) -> Gdap:
    """The relationships, read in the partner tenant (graph is the partner tenant's client)."""
    return parse(graph.gdap_relationships(customer_tenant_id))


def parse(items: Sequence[dict[str, Any]]) -> Gdap:
    return Gdap(tuple(_relationship(item) for item in items))


def _relationship(item: dict[str, Any]) -> Relationship:
    details = item.get("accessDetails") or {}
    held = tuple(str(r.get("roleDefinitionId") or "").lower() for r in details.get("unifiedRoles") or []
                 if isinstance(r, dict))
    return Relationship(str(item.get("id") or ""), str(item.get("displayName") or ""),
                        str(item.get("status") or "none"), held, _moment(item.get("endDateTime")))


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def describe_missing(missing: Sequence[Need]) -> str:
    """"License Administrator (4d6a…) for licences, …" — names and template ids an operator can grant."""
    return "; ".join(str(n) for n in missing)


def expiry_note(expiring: Sequence[Relationship], now: datetime) -> str:
    parts = []
    for r in expiring:
        when = f"ends {r.ends:%Y-%m-%d} (in {max(0, (r.ends - now).days)} days)" if r.ends else "is expiring"
        parts.append(f"GDAP relationship {r.name or r.id} {when}: extend it or create a new one before then")
    return "; ".join(parts)
