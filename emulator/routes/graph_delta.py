"""Graph v1.0 `users/delta`: a full pass in pages, then only what changed; unknown tokens answer 410."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..http import Request, Response, json_response, route
from ..tenant import Tenant
from ..users import User
from . import guard, odata
from .shapes import GRAPH_JSON

if TYPE_CHECKING:
    from ..app import Emulator


def _sync_reset(req: Request) -> ApiError:
    # Microsoft answers an unusable delta token with 410 and a Location to start over (see the report).
    return ApiError(410, "syncStateNotFound",
                    "The sync state generation is not found. The delta token is expired and data must be "
                    "synchronized again.", headers={"Location": f"{req.root}/v1.0/users/delta"})


def _cursor(em: Emulator, req: Request, tenant: Tenant, token: str, kind: str) -> dict[str, Any]:
    state = em.world.cursors.get(token)
    if state is None or state["kind"] != kind or state["tenant"] != tenant.tenant_id:
        raise _sync_reset(req)
    return state


async def users_delta(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req)
    delta_token = req.query.get("$deltatoken")
    skip_token = req.query.get("$skiptoken")
    if skip_token:
        state = _cursor(em, req, tenant, skip_token, "delta_page")
    elif delta_token == "latest":
        state = _new_round(req, tenant, since=tenant.seq, select=odata.parse_select(req))
        state["done"] = True
    elif delta_token:
        base = _cursor(em, req, tenant, delta_token, "delta")
        state = _new_round(req, tenant, since=base["since"], select=base["select"], top=base["top"])
    else:
        state = _new_round(req, tenant, since=None, select=odata.parse_select(req))
    select = tuple(state["select"]) if state["select"] else None
    items, last_key, more = ([], state["after"], False) if state.get("done") else _page(tenant, state, em.clock.time())
    body: dict[str, Any] = {"@odata.context": odata.context(req, "users", select)}
    if more:
        token = em.world.store_cursor({**state, "after": last_key})
        body["@odata.nextLink"] = f"{req.root}/v1.0/users/delta?$skiptoken={token}"
    else:
        token = em.world.store_cursor({"kind": "delta", "tenant": tenant.tenant_id, "since": state["hw"],
                                       "select": state["select"], "top": state["top"]})
        body["@odata.deltaLink"] = f"{req.root}/v1.0/users/delta?$deltatoken={token}"
    body["value"] = items
    return json_response(body, content_type=GRAPH_JSON)


def _new_round(req: Request, tenant: Tenant, *, since: int | None, select: Any, top: int | None = None
               ) -> dict[str, Any]:
    """`hw` fixes the round: changes after it belong to the next round's delta link."""
    return {"kind": "delta_page", "tenant": tenant.tenant_id, "since": since, "hw": tenant.seq,
            "after": 0, "select": list(select) if select else None, "top": top or odata.page_size(req)}


def _page(tenant: Tenant, state: dict[str, Any], now: float) -> tuple[list[dict[str, Any]], int, bool]:
    select = tuple(state["select"]) if state["select"] else None
    after, top, since, hw = state["after"], state["top"], state["since"], state["hw"]
    if since is None:
        # Full pass: every visible user, in creation order.
        entries: list[tuple[int, User | str]] = [
            (u.created_seq, u) for u in tenant.users.values() if u.visible(now) and u.created_seq > after]
    else:
        # Changes: users and removals stamped after `since`, in change order.
        entries = [(u.seq, u) for u in tenant.users.values()
                   if u.visible(now) and since < u.seq <= hw and u.seq > after]
        entries += [(seq, uid) for uid, seq in tenant.tombstones.items() if since < seq <= hw and seq > after]
        entries.sort(key=lambda e: e[0])
    chunk = entries[:top]
    items = [{"id": obj, "@removed": {"reason": "changed"}} if isinstance(obj, str) else obj.select(select)
             for _, obj in chunk]
    return items, chunk[-1][0] if chunk else after, len(entries) > top


ROUTES = [
    route("GET", "/v1.0/users/delta", users_delta, "graph"),
    route("GET", "/v1.0/users/delta()", users_delta, "graph"),
]
