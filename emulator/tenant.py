"""One customer tenant: domains, SKUs with seat counts, users, agreement, GDAP, consents, and its change log."""
from __future__ import annotations

import asyncio
import heapq
from dataclasses import dataclass, field
from typing import Any

from . import catalog
from .access import DEFAULT_ROLES, Consent
from .errors import ApiError, bad_request
from .users import MSG_BAD_DOMAIN, MSG_DUPLICATE_UPN, User, upn_domain

GDAP_STATES = ("none", "active", "expiring", "expired", "terminated", "approvalPending")
GDAP_GRANTS_ACCESS = frozenset({"active", "expiring"})
MAILBOX_STATES = ("none", "provisioning", "ready")


@dataclass
class Domain:
    name: str
    verified: bool
    is_default: bool = False
    is_initial: bool = False

    def view(self) -> dict[str, Any]:
        return {"name": self.name, "verified": self.verified, "default": self.is_default,
                "initial": self.is_initial}


@dataclass
class Sku:
    part_number: str
    sku_id: str
    units: int
    plans: list[tuple[str, str]]  # (servicePlanId, servicePlanName)
    consumed: int = 0
    mailbox_plan_ids: frozenset[str] = field(default_factory=frozenset)
    # Units bought but not yet visible in Graph: (due time, units), see fault purchase_delay_s.
    pending: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.mailbox_plan_ids = frozenset(pid for pid, name in self.plans if name in catalog.MAILBOX_PLANS)

    @property
    def enabled(self) -> int:
        """The seats Graph shows (prepaidUnits.enabled): the subscription quantity less units still on their way."""
        return self.units - sum(n for _, n in self.pending)

    @property
    def free(self) -> int:
        return self.enabled - self.consumed

    def buy(self, quantity: int, visible_at: float, now: float) -> int:
        """Partner Center accepted a new quantity: the added units reach Graph at `visible_at`."""
        added = quantity - self.units
        self.units = quantity
        if added > 0 and visible_at > now:
            self.pending.append((visible_at, added))
        return added

    def settle(self, now: float) -> None:
        if self.pending:
            self.pending = [(due, n) for due, n in self.pending if due > now]

    def view(self) -> dict[str, Any]:
        return {"sku_part_number": self.part_number, "sku_id": self.sku_id, "units": self.units,
                "pending_units": self.units - self.enabled, "consumed": self.consumed, "free": self.free,
                "service_plans": [{"servicePlanId": pid, "servicePlanName": name} for pid, name in self.plans]}


def build_sku(spec: dict[str, Any]) -> Sku:
    part = str(spec["sku_part_number"])
    raw_plans = spec.get("service_plans")
    plans: list[tuple[str, str]] = []
    for plan in catalog.default_plans(part) if raw_plans is None else raw_plans:
        if isinstance(plan, dict):
            name = str(plan.get("servicePlanName") or plan.get("name"))
            plans.append((str(plan.get("servicePlanId") or catalog.service_plan_id(name)), name))
        else:
            plans.append((catalog.service_plan_id(str(plan)), str(plan)))
    return Sku(part, str(spec.get("sku_id") or catalog.sku_id(part)), int(spec.get("units", 0)), plans)


class Tenant:
    """State of one tenant. Mutations happen in synchronous code under `lock`, so they are atomic."""

    def __init__(self, tenant_id: str, company_name: str, initial_domain: str, created_at: float) -> None:
        self.tenant_id = tenant_id
        self.company_name = company_name
        self.initial_domain = initial_domain
        self.created_at = created_at
        self.domains: dict[str, Domain] = {initial_domain.lower(): Domain(initial_domain, True, True, True)}
        self.skus: dict[str, Sku] = {}
        self.sku_by_id: dict[str, Sku] = {}
        self.mca: dict[str, Any] | None = None
        self.gdap = "active"
        self.gdap_roles: list[str] = list(DEFAULT_ROLES)
        # Partner apps with CPV consent here, by client id (see emulator.access).
        self.consents: dict[str, Consent] = {}
        self.users: dict[str, User] = {}
        self.by_upn: dict[str, str] = {}
        self.tombstones: dict[str, int] = {}
        self.seq = 0
        self.mailboxes_started = False
        self.token_ready_at = 0.0
        # (due time, user id): replication and mailbox timers, settled lazily when the tenant is touched.
        self.timers: list[tuple[float, str]] = []
        # Partner Center purchases: first answers by (operation, MS-RequestId), replayed on a repeat; carts.
        self.purchase_answers: dict[str, tuple[int, dict[str, Any]]] = {}
        self.carts: dict[str, dict[str, Any]] = {}
        self.lock = asyncio.Lock()

    # -- bookkeeping -------------------------------------------------------------------------------
    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def touch(self, user: User) -> None:
        user.seq = self.next_seq()

    def settle(self, now: float) -> None:
        """Apply due timers: a user becoming visible or a mailbox becoming ready is a change for delta."""
        for sku in self.skus.values():
            sku.settle(now)
        timers = self.timers
        while timers and timers[0][0] <= now:
            _, uid = heapq.heappop(timers)
            user = self.users.get(uid)
            if user is None:
                continue
            if user.mailbox == "provisioning" and user.mailbox_ready_at <= now:
                self._mailbox_ready(user)
            self.touch(user)

    def _mailbox_ready(self, user: User) -> None:
        user.mailbox = "ready"
        primary = f"SMTP:{user.upn}"
        others = [a for a in user.data["proxyAddresses"] if not a.startswith("SMTP:")]
        user.data["proxyAddresses"] = [primary, *others]
        user.data["mail"] = user.upn

    # -- domains and SKUs --------------------------------------------------------------------------
    def merge_domain(self, spec: dict[str, Any]) -> None:
        name = str(spec["name"])
        domain = self.domains.get(name.lower())
        if domain is None:
            domain = self.domains[name.lower()] = Domain(name, bool(spec.get("verified", False)))
        elif "verified" in spec:
            domain.verified = bool(spec["verified"])
        if spec.get("default"):
            for other in self.domains.values():
                other.is_default = False
            domain.is_default = True

    def merge_sku(self, spec: dict[str, Any]) -> None:
        existing = self.skus.get(str(spec["sku_part_number"]))
        if existing is None:
            sku = build_sku(spec)
            self.skus[sku.part_number] = self.sku_by_id[sku.sku_id] = sku
            return
        if "units" in spec:
            existing.units = int(spec["units"])
            existing.pending = []
        if spec.get("service_plans") is not None:
            existing.plans = build_sku({**spec, "sku_id": existing.sku_id}).plans
            existing.__post_init__()

    def verified_domain(self, upn: str) -> bool:
        domain = self.domains.get(upn_domain(upn))
        return domain is not None and domain.verified

    @property
    def gdap_grants_access(self) -> bool:
        return self.gdap in GDAP_GRANTS_ACCESS

    # -- users -------------------------------------------------------------------------------------
    def find_user(self, key: str) -> User | None:
        user = self.users.get(key)
        if user is None and "@" in key:
            uid = self.by_upn.get(key.lower())
            user = self.users.get(uid) if uid else None
        return user

    def add_user(self, data: dict[str, Any], *, now: float, lag: float, password: str | None,
                 require_verified: bool = True) -> User:
        upn = str(data["userPrincipalName"])
        if require_verified and not self.verified_domain(upn):
            raise bad_request(MSG_BAD_DOMAIN, detail_code="InvalidValue", target="userPrincipalName")
        if upn.lower() in self.by_upn or data["id"] in self.users:
            raise bad_request(MSG_DUPLICATE_UPN, detail_code="ObjectConflict", target="userPrincipalName")
        visible_at = now + lag if lag > 0 else 0.0
        user = User(data, seq=self.next_seq(), visible_at=visible_at, password=password)
        self.users[user.id] = user
        self.by_upn[upn.lower()] = user.id
        self.tombstones.pop(user.id, None)
        if lag > 0:
            heapq.heappush(self.timers, (visible_at, user.id))
        return user

    def rename(self, user: User, upn: str) -> None:
        if not self.verified_domain(upn):
            raise bad_request(MSG_BAD_DOMAIN, detail_code="InvalidValue", target="userPrincipalName")
        owner = self.by_upn.get(upn.lower())
        if owner is not None and owner != user.id:
            raise bad_request(MSG_DUPLICATE_UPN, detail_code="ObjectConflict", target="userPrincipalName")
        del self.by_upn[user.upn.lower()]
        user.data["userPrincipalName"] = upn
        self.by_upn[upn.lower()] = user.id

    def delete_user(self, user: User) -> None:
        for lic in user.data["assignedLicenses"]:
            sku = self.sku_by_id.get(lic["skuId"])
            if sku is not None:
                sku.consumed -= 1
        del self.users[user.id]
        self.by_upn.pop(user.upn.lower(), None)
        self.tombstones[user.id] = self.next_seq()

    # -- licences and mailboxes --------------------------------------------------------------------
    def assign_licences(self, user: User, add: list[dict[str, Any]], remove: list[str], *, now: float,
                        mailbox_delay: tuple[float, float]) -> int:
        """Graph's assignLicense: all-or-nothing; returns how many seats were newly consumed."""
        current = {lic["skuId"]: lic for lic in user.data["assignedLicenses"]}
        for sid in [str(a.get("skuId")) for a in add] + remove:
            if sid not in self.sku_by_id:
                raise bad_request(f"License {sid} does not correspond to a valid company License.")
        for sid in remove:
            if sid not in current:
                raise bad_request("User does not have a corresponding license.")
        if add and not user.data.get("usageLocation"):
            raise bad_request("License assignment cannot be done for user with invalid usage location.")
        new_ids = list(dict.fromkeys(str(a["skuId"]) for a in add if str(a["skuId"]) not in current))
        for sid in new_ids:
            if self.sku_by_id[sid].free < 1:
                raise bad_request(f"Subscription with SKU '{sid}' does not have any available licenses.")
        # Every check passed: apply removals, then additions (disabledPlans updated in place).
        for sid in remove:
            self.sku_by_id[sid].consumed -= 1
            del current[sid]
        for item in add:
            sid = str(item["skuId"])
            if sid not in current:
                self.sku_by_id[sid].consumed += 1
            current[sid] = {"disabledPlans": [str(p) for p in item.get("disabledPlans") or []], "skuId": sid}
        user.data["assignedLicenses"] = list(current.values())
        self._update_mailbox(user, now, mailbox_delay)
        self.touch(user)
        return len(new_ids)

    def has_mailbox_licence(self, user: User) -> bool:
        for lic in user.data["assignedLicenses"]:
            sku = self.sku_by_id.get(lic["skuId"])
            if sku is not None and sku.mailbox_plan_ids - set(lic["disabledPlans"]):
                return True
        return False

    def _update_mailbox(self, user: User, now: float, delay: tuple[float, float]) -> None:
        licensed = self.has_mailbox_licence(user)
        if licensed and user.mailbox == "none":
            wait = delay[1] if self.mailboxes_started else delay[0]
            self.mailboxes_started = True
            user.mailbox = "provisioning"
            user.mailbox_ready_at = now + wait
            if wait <= 0:
                self._mailbox_ready(user)
            else:
                heapq.heappush(self.timers, (user.mailbox_ready_at, user.id))
        elif not licensed and user.mailbox != "none":
            user.mailbox = "none"

    def seed_mailbox(self, user: User, state: str | None) -> None:
        """Seeded users with an Exchange licence already have their mailbox (the seed is the past)."""
        state = state or ("ready" if self.has_mailbox_licence(user) else "none")
        if state not in MAILBOX_STATES:
            raise ApiError(400, "invalid", f"mailbox must be one of {MAILBOX_STATES}")
        user.mailbox = state
        if state == "ready":
            self.mailboxes_started = True
            self._mailbox_ready(user)

    def consume_seats(self, user: User) -> None:
        """Count a seeded user's licences against the tenant's SKUs."""
        for lic in user.data["assignedLicenses"]:
            sku = self.sku_by_id.get(lic["skuId"])
            if sku is None:
                raise ApiError(400, "invalid", f"user {user.upn}: unknown skuId {lic['skuId']}")
            if sku.free < 1:
                raise ApiError(400, "invalid", f"user {user.upn}: no free seat of {sku.part_number}")
            sku.consumed += 1

    # -- views -------------------------------------------------------------------------------------
    def control_view(self, *, with_users: bool = True) -> dict[str, Any]:
        view: dict[str, Any] = {
            "tenant_id": self.tenant_id, "company_name": self.company_name,
            "initial_domain": self.initial_domain,
            "domains": [d.view() for d in self.domains.values()],
            "skus": [s.view() for s in self.skus.values()],
            "mca_signed": self.mca is not None, "mca": self.mca, "gdap": self.gdap, "gdap_roles": self.gdap_roles,
            "consented_apps": sorted(self.consents),
            "consents": [c.view(app) for app, c in sorted(self.consents.items())],
            "user_count": len(self.users),
        }
        if with_users:
            view["users"] = [u.control_view() for u in self.users.values()]
        return view
