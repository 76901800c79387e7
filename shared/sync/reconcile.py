"""Reconciling a batch of Entra users with the local users table in a few set-based statements."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from shared import audit
from shared.db.types import new_id
from shared.sync import bulk
from shared.sync.bulk import USERS
from shared.sync.plan_matching import PlanMatcher
from shared.sync.runs import Counts

# Per batch: one SELECT by entra id, one by UPN, then one executemany UPDATE for changed rows, one
# UPDATE stamping `synced_at` on unchanged ones, one INSERT for imported users (shared.sync.bulk).
# No ORM objects are loaded, so memory depends on the batch size, not on the tenant.
#
# Which side wins (SyncPolicy.master) only concerns the fields both sides edit: display name, first
# and last name, usage location. With `microsoft` Entra's values overwrite the local ones; with
# `local` the local values stay and each difference is recorded as a `user.sync.differs` audit
# event. Users the sync imported have no local author, so they always follow Entra. What only
# Entra knows (entra id and UPN, licences, matched plan, deleted or not) is always taken from it.

ACTIVE, DELETED, IMPORTED = "active", "deleted_in_entra", "imported"
MASTER_LOCAL = "local"
# Graph returns only its default properties unless $select names them.
ENTRA_SELECT = ("id", "userPrincipalName", "displayName", "givenName", "surname", "accountEnabled",
                "usageLocation", "assignedLicenses", "proxyAddresses")
OWNED = ("display_name", "first_name", "last_name", "usage_location")
WRITTEN = ("entra_id", "entra_upn", "entra_origin", "state", "licences", "matched_user_plan_id", *OWNED)
_COLUMNS = (USERS.c.id, USERS.c.upn, USERS.c.entra_id, USERS.c.entra_upn, USERS.c.entra_origin, USERS.c.state,
            USERS.c.source, USERS.c.licences, USERS.c.matched_user_plan_id, USERS.c.display_name,
            USERS.c.first_name, USERS.c.last_name, USERS.c.usage_location)
# A link the sync makes: the engine neither created the account nor vetted it (shared.users.adoption).
SYNCED = "synced"
_LIMITS = {"entra_upn": 255, "display_name": 256, "first_name": 64, "last_name": 64, "upn": 255}


@dataclass(frozen=True)
class SyncScope:
    """What every batch of one run needs to know about the customer."""

    customer_id: str
    initial_domain: str | None
    sku_parts: Mapping[str, str]  # skuId -> sku part number, from this run's subscribedSkus
    matcher: PlanMatcher
    import_unknown: bool
    master: str


@dataclass
class _Plan:
    """The statements one batch needs, gathered before any is sent."""

    updates: list[dict[str, Any]] = field(default_factory=list)
    stamps: list[str] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    differences: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)  # user id -> the plan its licences match


def _clip(name: str, value: Any) -> Any:
    if value is None:
        return None
    text = str(value)
    limit = _LIMITS.get(name)
    return text[:limit] if limit else text


def _local_part(upn: str) -> str:
    return upn.rpartition("@")[0].lower()


def _domain(upn: str) -> str:
    return upn.rpartition("@")[2].lower()


class Reconciler:
    """Applies batches of one sync run; remembers which unlinked local users it has linked meanwhile."""

    def __init__(self, scope: SyncScope, unlinked_by_local_part: dict[str, list[str]], now: datetime) -> None:
        self.scope = scope
        # The round's start: every user this round sees gets it as synced_at, which sweep() relies on.
        self.now = now
        # Local users without an Entra id, by the part before @: the guide's fallback link for users
        # the engine created on the onmicrosoft.com domain because theirs was not verified.
        self._unlinked = unlinked_by_local_part
        self._taken: set[str] = set()

    @classmethod
    def load(cls, session: Session, scope: SyncScope, now: datetime) -> Reconciler:
        by_part: dict[str, list[str]] = {}
        if scope.initial_domain:
            rows = session.execute(select(USERS.c.id, USERS.c.upn).where(
                USERS.c.customer_id == scope.customer_id, USERS.c.entra_id.is_(None)))
            for uid, upn in rows.tuples():
                by_part.setdefault(_local_part(upn), []).append(uid)
        return cls(scope, by_part, now)

    # -- one batch -------------------------------------------------------------------------------
    def apply(self, session: Session, items: Iterable[dict[str, Any]]) -> Counts:
        latest: dict[str, dict[str, Any]] = {}
        for item in items:
            if item.get("id"):
                latest[str(item["id"])] = item  # a user changed twice in one round: the last state counts
        counts = Counts()
        removed = [eid for eid, item in latest.items() if "@removed" in item]
        present = {eid: item for eid, item in latest.items() if "@removed" not in item}
        if removed:
            counts.removed += self._mark_removed(session, removed)
        if not present:
            return counts
        matched = self._match(session, present)
        plan = _Plan()
        for eid, item in present.items():
            row = matched.get(eid)
            if row is None:
                self._unknown(item, plan, counts)
            else:
                self._known(row, item, plan, counts)
        self._write(session, plan, counts)
        return counts

    def _match(self, session: Session, present: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Local rows for Entra ids: by entra id, then by UPN, then by local part on the initial domain."""
        cid = self.scope.customer_id
        matched: dict[str, Any] = {}
        for row in bulk.users_by(session, cid, USERS.c.entra_id, list(present), _COLUMNS):
            matched.setdefault(row.entra_id, row)
        used = {row.id for row in matched.values()}
        by_upn = {str(item.get("userPrincipalName") or "").lower(): eid
                  for eid, item in present.items() if eid not in matched and item.get("userPrincipalName")}
        if by_upn:
            for row in bulk.users_by(session, cid, USERS.c.upn, list(by_upn), _COLUMNS):
                eid = by_upn[row.upn]
                # A row linked to another Entra user that still exists keeps its link: ids beat UPNs.
                if row.id not in used and (row.entra_id is None or row.state == DELETED):
                    matched[eid] = row
                    used.add(row.id)
        by_part = self._local_part_links(present, matched, used)
        if by_part:
            for row in session.execute(select(*_COLUMNS).where(bulk.one_of(session, USERS.c.id, list(by_part)),
                                                                USERS.c.entra_id.is_(None))):
                matched[by_part[row.id]] = row
        for row in matched.values():
            self._taken.add(row.id)
        return matched

    def _local_part_links(self, present: dict[str, dict[str, Any]], matched: dict[str, Any],
                          used: set[str]) -> dict[str, str]:
        """local user id -> Entra id, for Entra users on the onmicrosoft.com domain nobody matched yet."""
        initial = self.scope.initial_domain
        links: dict[str, str] = {}
        if not initial or not self._unlinked:
            return links
        for eid, item in present.items():
            upn = str(item.get("userPrincipalName") or "")
            if eid in matched or _domain(upn) != initial:
                continue
            candidates = [uid for uid in self._unlinked.get(_local_part(upn), ())
                          if uid not in self._taken and uid not in used and uid not in links]
            if len(candidates) == 1:  # two local users with that name: ambiguous, link neither
                links[candidates[0]] = eid
        return links

    # -- what to write -----------------------------------------------------------------------------
    def _entra_values(self, item: dict[str, Any]) -> dict[str, Any]:
        """The local columns this Entra user implies; absent properties leave their column alone."""
        values: dict[str, Any] = {"entra_id": str(item["id"]), "state": ACTIVE}
        if item.get("userPrincipalName"):
            values["entra_upn"] = _clip("entra_upn", str(item["userPrincipalName"]).lower())
        if item.get("displayName"):
            values["display_name"] = _clip("display_name", item["displayName"])
        if "givenName" in item:
            values["first_name"] = _clip("first_name", item["givenName"])
        if "surname" in item:
            values["last_name"] = _clip("last_name", item["surname"])
        if "usageLocation" in item:
            location = item["usageLocation"]
            values["usage_location"] = str(location)[:2].upper() if location else None
        if "assignedLicenses" in item:
            parts = self.scope.sku_parts
            licences = sorted({parts.get(str(lic.get("skuId")), str(lic.get("skuId")))
                               for lic in item.get("assignedLicenses") or [] if lic.get("skuId")})
            values["licences"] = licences
            values["matched_user_plan_id"] = self.scope.matcher.match(licences)
        return values

    def _known(self, row: Any, item: dict[str, Any], plan: _Plan, counts: Counts) -> None:
        entra = self._entra_values(item)
        current = {name: getattr(row, name) for name in WRITTEN}
        wanted = dict(current)
        local_wins = self.scope.master == MASTER_LOCAL and row.source != IMPORTED
        differs: dict[str, Any] = {}
        for name, value in entra.items():
            if name in OWNED and local_wins:
                if value != current[name]:
                    differs[name] = {"local": current[name], "entra": value}
                continue
            wanted[name] = value
        if row.entra_id != entra["entra_id"]:
            wanted["entra_origin"] = SYNCED  # linked now, by the sync
        if wanted["matched_user_plan_id"]:
            plan.plans[row.id] = wanted["matched_user_plan_id"]
        if wanted != current:
            plan.updates.append({"b_id": row.id, **{"v_" + k: v for k, v in wanted.items()}})
            counts.updated += 1
        else:
            plan.stamps.append(row.id)
        if differs:
            plan.differences.append((row.id, {"fields": differs, "master": MASTER_LOCAL}))

    def _unknown(self, item: dict[str, Any], plan: _Plan, counts: Counts) -> None:
        upn = str(item.get("userPrincipalName") or "").lower()
        if not self.scope.import_unknown or not upn:
            counts.ignored += 1
            return
        values = self._entra_values(item)
        now = self.now
        aliases = sorted({a[5:].lower() for a in item.get("proxyAddresses") or []
                          if isinstance(a, str) and a.startswith("smtp:")} - {upn})
        plan.inserts.append({
            "id": new_id(), "customer_id": self.scope.customer_id, "upn": _clip("upn", upn),
            "display_name": values.get("display_name") or upn.partition("@")[0],
            "first_name": values.get("first_name"), "last_name": values.get("last_name"),
            "usage_location": values.get("usage_location"), "aliases": aliases,
            "entra_id": values["entra_id"], "entra_upn": values.get("entra_upn", upn), "entra_origin": SYNCED,
            "state": ACTIVE, "source": IMPORTED, "licences": values.get("licences", []),
            "matched_user_plan_id": values.get("matched_user_plan_id"), "synced_at": now,
            "created_at": now, "updated_at": now})

    def _write(self, session: Session, plan: _Plan, counts: Counts) -> None:
        now = self.now
        bulk.update_users(session, plan.updates, WRITTEN, synced_at=now, updated_at=now)
        if plan.stamps:
            # Seen and unchanged: only synced_at moves; updated_at keeps meaning "content changed".
            session.execute(update(USERS).where(bulk.one_of(session, USERS.c.id, plan.stamps))
                            .values(synced_at=now, updated_at=USERS.c.updated_at))
        # A UPN already held by a local user linked to another, live Entra user is not imported.
        inserted = bulk.insert_users(session, plan.inserts)
        counts.created += len(inserted)
        matched = {r["id"]: r["matched_user_plan_id"] for r in plan.inserts if r["matched_user_plan_id"]}
        # Linked and imported users with a matching plan are provisioned users, counted like the others.
        bulk.provision_services(session, {**plan.plans, **{uid: matched[uid] for uid in inserted if uid in matched}},
                                now)
        if plan.differences:
            audit.record_many(session, "sync", "user.sync.differs", "user", plan.differences)

    def _mark_removed(self, session: Session, entra_ids: list[str]) -> int:
        result = session.execute(
            update(USERS)
            .where(USERS.c.customer_id == self.scope.customer_id, bulk.one_of(session, USERS.c.entra_id, entra_ids),
                   USERS.c.state != DELETED)
            .values(state=DELETED, synced_at=self.now, updated_at=self.now))
        return int(getattr(result, "rowcount", 0) or 0)

    # -- after a full round --------------------------------------------------------------------------
    def begin_round(self, now: datetime) -> None:
        self.now = now

    def sweep(self, session: Session) -> int:
        """Linked users a full round did not list are gone from Entra (deleted while no delta link was kept).

        Users linked or changed by provisioning since the round began are spared: the round may
        predate them.
        """
        round_started = self.now
        result = session.execute(
            update(USERS)
            .where(and_(USERS.c.customer_id == self.scope.customer_id, USERS.c.entra_id.is_not(None),
                        USERS.c.state != DELETED, USERS.c.updated_at < round_started,
                        (USERS.c.synced_at.is_(None)) | (USERS.c.synced_at < round_started)))
            .values(state=DELETED, updated_at=round_started))
        return int(getattr(result, "rowcount", 0) or 0)
