"""Graph v1.0 users: list/filter/page, get, create, update, delete, assignLicense, mailboxSettings."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..catalog import DIRECTORY_ROLES, stable_guid
from ..clock import iso
from ..errors import ApiError, bad_request, not_found
from ..http import Request, Response, empty, json_response, route
from ..tenant import Tenant
from ..users import MSG_DUPLICATE_UPN, User, check_create, check_password, check_writable, new_user_data
from . import guard, odata
from .shapes import GRAPH_JSON

if TYPE_CHECKING:
    from ..app import Emulator


def _visible_user(tenant: Tenant, key: str, now: float) -> User:
    """Replication lag: a user Graph has not replicated yet answers 404 to reads and writes alike."""
    user = tenant.find_user(key)
    if user is None or not user.visible(now):
        raise not_found(key)
    return user


def _entity(req: Request, user: User, select: tuple[str, ...] | None, status: int = 200) -> Response:
    body = {"@odata.context": odata.context(req, "users", select, entity=True), **user.select(select)}
    return json_response(body, status, content_type=GRAPH_JSON)


async def list_users(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req)
    token = req.query.get("$skiptoken")
    if token:
        state = em.world.cursors.get(token)
        if state is None or state.get("kind") != "users" or state["tenant"] != tenant.tenant_id:
            raise odata.expired_page_token()
    else:
        state = {"kind": "users", "tenant": tenant.tenant_id, "after": 0, "filter": req.query.get("$filter"),
                 "select": odata.parse_select(req), "top": odata.page_size(req),
                 "count": req.query.get("$count", "").lower() == "true"}
    where = odata.Filter(state["filter"]) if state["filter"] else None
    now = em.clock.time()
    upn = where.equals.get("userPrincipalName") if where else None
    if upn is not None:  # the common lookup: use the index instead of a scan
        found = tenant.find_user(upn) if "@" in upn else None
        candidates: Any = [found] if found is not None else []
    else:
        candidates = tenant.users.values()
    page: list[User] = []
    more = False
    matched = 0
    for user in candidates:
        if not user.visible(now) or (where is not None and not where(user.data)):
            continue
        matched += 1
        if user.created_seq <= state["after"]:
            continue
        if len(page) == state["top"]:
            more = True
            if not state["count"]:
                break
            continue
        page.append(user)
    select = tuple(state["select"]) if state["select"] else None
    body: dict[str, Any] = {"@odata.context": odata.context(req, "users", select)}
    if state["count"]:
        body["@odata.count"] = matched
    if more:
        token = em.world.store_cursor({**state, "after": page[-1].created_seq})
        body["@odata.nextLink"] = f"{req.root}/v1.0/users?$skiptoken={token}"
    body["value"] = [u.select(select) for u in page]
    return json_response(body, content_type=GRAPH_JSON)


async def get_user(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req)
    user = _visible_user(tenant, req.params["id"], em.clock.time())
    return _entity(req, user, odata.parse_select(req))


async def create_user(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req, "users.write")
    body = req.json_object()
    check_writable({k: v for k, v in body.items() if not k.startswith("@")})
    password = check_create(body)
    async with tenant.lock:
        if str(body["userPrincipalName"]).lower() in tenant.by_upn:
            em.stats.count("duplicate_create_attempts", tenant.tenant_id)
            raise bad_request(MSG_DUPLICATE_UPN, detail_code="ObjectConflict", target="userPrincipalName")
        now = em.clock.time()
        data = new_user_data(body, iso(now))
        user = tenant.add_user(data, now=now, lag=em.faults.replication_lag_s, password=password)
        em.stats.count("users_created", tenant.tenant_id)
    return _entity(req, user, None, 201)


async def update_user(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req, "users.write")
    body = {k: v for k, v in req.json_object().items() if not k.startswith("@")}
    check_writable(body)
    async with tenant.lock:
        user = _visible_user(tenant, req.params["id"], em.clock.time())
        profile = body.pop("passwordProfile", None)
        if isinstance(profile, dict) and profile.get("password"):
            check_password(str(profile["password"]))
            user.password = str(profile["password"])
            user.data["lastPasswordChangeDateTime"] = iso(em.clock.time())
        upn = body.pop("userPrincipalName", None)
        if upn and upn != user.upn:
            tenant.rename(user, str(upn))
        user.data.update(body)
        tenant.touch(user)
    return empty(204)


async def delete_user(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req, "users.write")
    async with tenant.lock:
        user = _visible_user(tenant, req.params["id"], em.clock.time())
        tenant.delete_user(user)
    return empty(204)


async def assign_license(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req, "licences")
    body = req.json_object()
    missing = [name for name in ("addLicenses", "removeLicenses") if not isinstance(body.get(name), list)]
    if missing:
        raise bad_request("One or more parameters of the function import 'assignLicense' are missing from the "
                          f"request payload. The missing parameters are: {', '.join(missing)}.")
    add = body["addLicenses"]
    if any(not isinstance(a, dict) or not a.get("skuId") for a in add):
        raise bad_request("Invalid value specified for property 'skuId' of resource 'AssignedLicense'.")
    remove = [str(s) for s in body["removeLicenses"]]
    async with tenant.lock:
        now = em.clock.time()
        user = _visible_user(tenant, req.params["id"], now)
        consumed = tenant.assign_licences(user, add, remove, now=now, mailbox_delay=em.faults.mailbox_delay)
        em.stats.count("licence_assignments", tenant.tenant_id, consumed)
        em.stats.count("licence_removals", tenant.tenant_id, len(remove))
    return _entity(req, user, None)


async def member_of(em: Emulator, req: Request) -> Response:
    """The user's direct memberships: here its directory roles, as Graph's directoryRole objects."""
    tenant = guard.graph_tenant(em, req)
    user = _visible_user(tenant, req.params["id"], em.clock.time())
    roles = [{"@odata.type": "#microsoft.graph.directoryRole", "id": stable_guid("role", f"{tenant.tenant_id}:{tid}"),
              "deletedDateTime": None, "description": DIRECTORY_ROLES[tid][1], "displayName": DIRECTORY_ROLES[tid][0],
              "roleTemplateId": tid} for tid in user.roles]
    return json_response({"@odata.context": f"{req.root}/v1.0/$metadata#directoryObjects", "value": roles},
                         content_type=GRAPH_JSON)


async def mailbox_settings(em: Emulator, req: Request) -> Response:
    tenant = guard.graph_tenant(em, req)
    user = _visible_user(tenant, req.params["id"], em.clock.time())
    if user.mailbox != "ready":
        raise ApiError(404, "MailboxNotEnabledForRESTAPI",
                       "The mailbox is either inactive, soft-deleted, or is hosted on-premise.")
    return json_response({
        "@odata.context": f"{req.root}/v1.0/$metadata#users('{user.id}')/mailboxSettings",
        "archiveFolder": "", "timeZone": "UTC", "delegateMeetingMessageDeliveryOptions":
            "sendToDelegateOnly", "dateFormat": "", "timeFormat": "", "userPurpose": "user",
        "automaticRepliesSetting": {"status": "disabled", "externalAudience": "all",
                                    "internalReplyMessage": "", "externalReplyMessage": ""},
        "language": {"locale": "en-US", "displayName": "English (United States)"},
        "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                         "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                         "timeZone": {"name": "UTC"}},
    }, content_type=GRAPH_JSON)


ROUTES = [
    route("GET", "/v1.0/users", list_users, "graph"),
    route("POST", "/v1.0/users", create_user, "graph"),
    route("GET", "/v1.0/users/{id}", get_user, "graph"),
    route("PATCH", "/v1.0/users/{id}", update_user, "graph"),
    route("DELETE", "/v1.0/users/{id}", delete_user, "graph"),
    route("POST", "/v1.0/users/{id}/assignLicense", assign_license, "graph"),
    route("GET", "/v1.0/users/{id}/mailboxSettings", mailbox_settings, "graph"),
    route("GET", "/v1.0/users/{id}/memberOf", member_of, "graph"),
]
