"""The `/_emulator` control API: reset, partners (and their refresh tokens), device-code sign-ins, tenants and
their users, faults, stats, the clock."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..clock import iso
from ..errors import ApiError
from ..http import Request, Response, empty, json_response, route
from ..tenant import Tenant
from ..users import new_user_data, role_templates

if TYPE_CHECKING:
    from ..app import Emulator

_GENERATE_MAX = 200_000


def _tenant(em: Emulator, tenant_id: str) -> Tenant:
    tenant = em.world.tenants.get(tenant_id)
    if tenant is None:
        raise ApiError(404, "not_found", f"no tenant {tenant_id}")
    return tenant


async def reset(em: Emulator, req: Request) -> Response:
    em.reset()
    return empty(204)


async def add_partner(em: Emulator, req: Request) -> Response:
    return json_response(em.world.add_partner(req.json_object()).view(), 201)


async def list_partners(em: Emulator, req: Request) -> Response:
    return json_response({"items": [p.view() for p in em.world.partners.values()]})


async def revoke_refresh_tokens(em: Emulator, req: Request) -> Response:
    """Every refresh token of the app stops working (invalid_grant AADSTS50173), as after a password reset."""
    client_id = req.params["client"]
    if client_id not in em.world.partners:
        raise ApiError(404, "not_found", f"no partner app {client_id}")
    return json_response({"revoked": em.world.revoke_refresh_tokens(client_id)})


async def list_device_codes(em: Emulator, req: Request) -> Response:
    """Device-code sign-ins someone may still approve (the user codes, never the device codes)."""
    now = em.clock.time()
    return json_response({"items": [d.view() for d in em.world.device_codes.values() if d.expires_at > now]})


async def answer_device_code(em: Emulator, req: Request) -> Response:
    """The person at the verification page: `approve` signs in (msal's poll then gets tokens), `decline` refuses."""
    answer = req.params["answer"]
    if answer not in ("approve", "decline"):
        raise ApiError(404, "not_found", f"no action {answer}; use approve or decline")
    pending = em.world.device_code_by_user_code(req.params["code"])
    if pending is None or pending.expires_at <= em.clock.time():
        raise ApiError(404, "not_found", f"no pending device code {req.params['code']}")
    if pending.state != "pending":
        raise ApiError(409, "conflict", f"device code {pending.user_code} was already {pending.state}")
    pending.state = "approved" if answer == "approve" else "declined"
    return json_response(pending.view())


async def create_tenant(em: Emulator, req: Request) -> Response:
    async with em.create_lock:
        tenant = em.world.create_tenant(req.json_object(), now=em.clock.time())
    return json_response(tenant.control_view(), 201)


async def list_tenants(em: Emulator, req: Request) -> Response:
    return json_response({"items": [t.control_view(with_users=False) for t in em.world.tenants.values()]})


async def get_tenant(em: Emulator, req: Request) -> Response:
    tenant = _tenant(em, req.params["tenant"])
    tenant.settle(em.clock.time())
    return json_response(tenant.control_view(with_users=req.query.get("users", "true") != "false"))


async def patch_tenant(em: Emulator, req: Request) -> Response:
    tenant = _tenant(em, req.params["tenant"])
    async with tenant.lock:
        em.world.update_tenant(tenant, req.json_object(), now=em.clock.time())
    return json_response(tenant.control_view())


async def delete_tenant(em: Emulator, req: Request) -> Response:
    _tenant(em, req.params["tenant"])
    del em.world.tenants[req.params["tenant"]]
    return empty(204)


async def patch_user(em: Emulator, req: Request) -> Response:
    """A change made in Entra directly (not through the engine); it shows in users/delta."""
    tenant = _tenant(em, req.params["tenant"])
    body = req.json_object()
    async with tenant.lock:
        user = tenant.find_user(req.params["user"])
        if user is None:
            raise ApiError(404, "not_found", f"no user {req.params['user']}")
        mailbox = body.pop("mailbox", None)
        if "directory_roles" in body:
            try:
                user.roles = role_templates(body.pop("directory_roles"))
            except ValueError as exc:
                raise ApiError(400, "invalid", str(exc)) from None
        upn = body.pop("userPrincipalName", None)
        if upn and upn != user.upn:
            if tenant.by_upn.get(str(upn).lower(), user.id) != user.id:
                raise ApiError(409, "conflict", f"{upn} belongs to another user")
            del tenant.by_upn[user.upn.lower()]
            user.data["userPrincipalName"] = upn
            tenant.by_upn[str(upn).lower()] = user.id
        user.data.update({k: v for k, v in body.items() if k not in ("id", "assignedLicenses")})
        if mailbox is not None:
            tenant.seed_mailbox(user, str(mailbox))
        tenant.touch(user)
    return json_response(user.control_view())


async def delete_user(em: Emulator, req: Request) -> Response:
    tenant = _tenant(em, req.params["tenant"])
    async with tenant.lock:
        user = tenant.find_user(req.params["user"])
        if user is None:
            raise ApiError(404, "not_found", f"no user {req.params['user']}")
        tenant.delete_user(user)
    return empty(204)


async def generate_users(em: Emulator, req: Request) -> Response:
    """Many plain users at once, for benchmarks: `{count, licensed_sku?, domain?, prefix?}`."""
    tenant = _tenant(em, req.params["tenant"])
    body = req.json_object()
    count = body.get("count")
    if not isinstance(count, int) or not 0 < count <= _GENERATE_MAX:
        raise ApiError(400, "invalid", f"count must be an integer in 1..{_GENERATE_MAX}")
    domain = str(body.get("domain") or tenant.initial_domain)
    prefix = str(body.get("prefix") or "user")
    sku = tenant.skus.get(str(body.get("licensed_sku"))) if body.get("licensed_sku") else None
    if body.get("licensed_sku") and sku is None:
        raise ApiError(400, "invalid", f"no SKU {body['licensed_sku']} in the tenant")
    async with tenant.lock:
        if sku is not None and sku.free < count:
            raise ApiError(400, "invalid", f"{sku.part_number} has {sku.free} free seats, not {count}")
        now = em.clock.time()
        ids = []
        start = len(tenant.users)
        for n in range(start, start + count):
            name = f"{prefix}{n:06d}"
            upn = f"{name}@{domain}"
            if upn.lower() in tenant.by_upn:
                continue
            licences = [{"skuId": sku.sku_id, "disabledPlans": []}] if sku else []
            data = new_user_data({"userPrincipalName": upn, "displayName": name, "mailNickname": name,
                                  "givenName": name, "surname": "Generated", "usageLocation": "US",
                                  "assignedLicenses": licences}, iso(now))
            user = tenant.add_user(data, now=now, lag=0, password=None, require_verified=False)
            tenant.consume_seats(user)
            tenant.seed_mailbox(user, None)
            ids.append(user.id)
    return json_response({"created": len(ids), "first_id": ids[0] if ids else None,
                          "last_id": ids[-1] if ids else None}, 201)


async def get_faults(em: Emulator, req: Request) -> Response:
    return json_response(em.faults.view())


async def put_faults(em: Emulator, req: Request) -> Response:
    em.faults.update(req.json_object())
    return json_response(em.faults.view())


async def get_stats(em: Emulator, req: Request) -> Response:
    return json_response(em.stats.view())


async def reset_stats(em: Emulator, req: Request) -> Response:
    em.stats.reset()
    return empty(204)


async def get_clock(em: Emulator, req: Request) -> Response:
    return json_response(em.clock.view())


async def put_clock(em: Emulator, req: Request) -> Response:
    """`{"frozen": true}` stops Microsoft's time until advanced; `{"frozen": false}` lets it run on from there."""
    body = req.json_object()
    frozen = body.get("frozen")
    if set(body) != {"frozen"} or not isinstance(frozen, bool):
        raise ApiError(400, "invalid", 'the body must be {"frozen": true} or {"frozen": false}')
    if frozen:
        em.clock.freeze()
    else:
        em.clock.resume()
    return json_response(em.clock.view())


async def advance_clock(em: Emulator, req: Request) -> Response:
    """`{"seconds": n}`: Microsoft's time jumps forward (lag, mailbox delays, Retry-After, token expiry)."""
    body = req.json_object()
    seconds = body.get("seconds")
    if set(body) != {"seconds"} or isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ApiError(400, "invalid", 'the body must be {"seconds": n} with n >= 0')
    em.clock.advance(float(seconds))
    return json_response(em.clock.view())


async def expire_delta_tokens(em: Emulator, req: Request) -> Response:
    """Forget every delta and paging cursor: the next use of one answers like an expired token."""
    em.world.cursors.clear()
    return empty(204)


ROUTES = [
    route("POST", "/_emulator/reset", reset, "control"),
    route("POST", "/_emulator/partners", add_partner, "control"),
    route("GET", "/_emulator/partners", list_partners, "control"),
    route("POST", "/_emulator/partners/{client}/revoke-refresh-tokens", revoke_refresh_tokens, "control"),
    route("GET", "/_emulator/device-codes", list_device_codes, "control"),
    route("POST", "/_emulator/device-codes/{code}/{answer}", answer_device_code, "control"),
    route("POST", "/_emulator/tenants", create_tenant, "control"),
    route("GET", "/_emulator/tenants", list_tenants, "control"),
    route("GET", "/_emulator/tenants/{tenant}", get_tenant, "control"),
    route("PATCH", "/_emulator/tenants/{tenant}", patch_tenant, "control"),
    route("DELETE", "/_emulator/tenants/{tenant}", delete_tenant, "control"),
    route("POST", "/_emulator/tenants/{tenant}/users:generate", generate_users, "control"),
    route("PATCH", "/_emulator/tenants/{tenant}/users/{user}", patch_user, "control"),
    route("DELETE", "/_emulator/tenants/{tenant}/users/{user}", delete_user, "control"),
    route("GET", "/_emulator/faults", get_faults, "control"),
    route("PUT", "/_emulator/faults", put_faults, "control"),
    route("GET", "/_emulator/stats", get_stats, "control"),
    route("POST", "/_emulator/stats/reset", reset_stats, "control"),
    route("POST", "/_emulator/delta/expire", expire_delta_tokens, "control"),
    route("GET", "/_emulator/clock", get_clock, "control"),
    route("PUT", "/_emulator/clock", put_clock, "control"),
    route("POST", "/_emulator/clock/advance", advance_clock, "control"),
]
