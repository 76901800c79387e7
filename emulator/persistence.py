"""Save the world to a JSON file and load it back (`--state FILE`)."""
from __future__ import annotations

import base64
import heapq
import os
from typing import Any

import orjson

from .access import Consent
from .tenant import Domain, Sku, Tenant
from .tls import write_atomically
from .users import User
from .world import World

FORMAT = 1


def dump(world: World, faults: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "signing_key": base64.b64encode(world.signing_key).decode(),
        "faults": faults,
        "partners": [p.view() for p in world.partners.values()],
        "tenants": [_dump_tenant(t) for t in world.tenants.values()],
        "cursors": list(world.cursors.items()),
        "refresh_tokens": [[token, owner, revoked] for token, (owner, revoked) in world.refresh_tokens.items()],
    }


def _dump_tenant(t: Tenant) -> dict[str, Any]:
    return {
        "tenant_id": t.tenant_id, "company_name": t.company_name, "initial_domain": t.initial_domain,
        "created_at": t.created_at, "gdap": t.gdap, "mca": t.mca, "seq": t.seq,
        "mailboxes_started": t.mailboxes_started, "token_ready_at": t.token_ready_at,
        "domains": [vars(d) for d in t.domains.values()],
        "skus": [{"part_number": s.part_number, "sku_id": s.sku_id, "units": s.units, "plans": s.plans,
                  "consumed": s.consumed} for s in t.skus.values()],
        "users": [{"data": u.data, "seq": u.seq, "created_seq": u.created_seq, "visible_at": u.visible_at,
                   "mailbox": u.mailbox, "mailbox_ready_at": u.mailbox_ready_at, "password": u.password,
                   "roles": u.roles}
                  for u in t.users.values()],
        "tombstones": t.tombstones, "timers": t.timers, "gdap_roles": t.gdap_roles,
        "consents": {app: {"granted_at": c.granted_at, "effective_at": c.effective_at, "grants": sorted(c.grants)}
                     for app, c in t.consents.items()},
    }


def load(data: dict[str, Any]) -> tuple[World, dict[str, Any]]:
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown state format {data.get('format')!r}")
    world = World(base64.b64decode(data["signing_key"]))
    for p in data["partners"]:
        world.add_partner(p)
    for raw in data["tenants"]:
        tenant = Tenant(raw["tenant_id"], raw["company_name"], raw["initial_domain"], raw["created_at"])
        tenant.gdap, tenant.mca, tenant.seq = raw["gdap"], raw["mca"], raw["seq"]
        tenant.mailboxes_started, tenant.token_ready_at = raw["mailboxes_started"], raw["token_ready_at"]
        tenant.domains = {d["name"].lower(): Domain(**d) for d in raw["domains"]}
        for s in raw["skus"]:
            sku = Sku(s["part_number"], s["sku_id"], s["units"], [tuple(p) for p in s["plans"]], s["consumed"])
            tenant.skus[sku.part_number] = tenant.sku_by_id[sku.sku_id] = sku
        for u in raw["users"]:
            user = User(u["data"], seq=u["seq"], visible_at=u["visible_at"], password=u["password"])
            user.created_seq, user.mailbox = u["created_seq"], u["mailbox"]
            user.mailbox_ready_at = u["mailbox_ready_at"]
            user.roles = list(u.get("roles") or [])
            tenant.users[user.id] = user
            tenant.by_upn[user.upn.lower()] = user.id
        tenant.tombstones = dict(raw["tombstones"])
        tenant.timers = [tuple(t) for t in raw["timers"]]
        tenant.gdap_roles = list(raw.get("gdap_roles", tenant.gdap_roles))
        if "consents" in raw:
            tenant.consents = {app: Consent(c["granted_at"], c["effective_at"], frozenset(c["grants"]))
                               for app, c in raw["consents"].items()}
        else:  # saved before consents existed, when every partner app could sign in everywhere
            world.set_consents(tenant, list(world.partners), now=raw["created_at"])
        heapq.heapify(tenant.timers)
        world.tenants[tenant.tenant_id] = tenant
    for token, state in data.get("cursors", []):
        world.cursors[token] = state
    for token, owner, revoked in data.get("refresh_tokens", []):
        world.refresh_tokens[token] = (owner, revoked)
    return world, data.get("faults") or {}


def save_file(path: str, world: World, faults: dict[str, Any]) -> None:
    # The file holds client secrets and the token signing key: readable by its owner only.
    write_atomically(path, orjson.dumps(dump(world, faults)), mode=0o600)


def load_file(path: str) -> tuple[World, dict[str, Any]] | None:
    if not os.path.exists(path):
        return None
    with open(path, "rb") as source:
        return load(orjson.loads(source.read()))
