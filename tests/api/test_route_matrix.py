"""The route matrix: every /v1 route in the OpenAPI document by every role by its own or a foreign object.

RULES has one row per (method, path): the roles that may act and the kind of object the route is about
(which decides what "foreign" means). A route in OpenAPI without a row fails the test, so a new route
cannot ship without saying who may call it.
"""
from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.testclient import TestClient

from shared.auth.principal import CUSTOMER, OPERATOR, SERVICE_PROVIDER
from shared.settings import reset_settings
from tests.api.conftest import SKU, Api, World, build_world, new_key, user_body

ANY = frozenset({OPERATOR, SERVICE_PROVIDER, CUSTOMER})
MANAGERS = frozenset({OPERATOR, SERVICE_PROVIDER})
OPERATORS = frozenset({OPERATOR})
# Outside /v1 and unauthenticated by design; nothing else may be left out.
EXCLUDED = {"/healthz", "/readyz", "/metrics"}


@dataclass(frozen=True)
class Ids:
    """One reseller's objects: its provider, customer, plans, a user and a request about that user."""

    world: World
    partner_secret: str
    user_id: str
    request_id: str


Body = Callable[[Ids, Ids], Any]  # (the caller's world, the object's world) -> the JSON body


@dataclass(frozen=True)
class Rule:
    """Who may act, and on what: `obj` is provider/customer/user/request (the path's object), `body-provider`
    (the provider named in the body) or None (a collection: nothing is foreign)."""

    roles: frozenset[str]
    obj: str | None
    body: Body | None = None
    query: str = ""
    # Roles that never see this kind of object (a customer key and providers): 404 even for their own.
    blind: frozenset[str] = field(default_factory=frozenset)
    # The role check comes before the object is looked up (nothing about the object is revealed): a
    # role that may not act gets 403 for a foreign object too.
    role_first: bool = False


def _plans(w: Ids) -> list[dict[str, Any]]:
    return [{"user_plan_id": w.world.user_plan_id, "hard_limit": 50}]


def _connect(w: Ids) -> dict[str, Any]:
    return {"customer_plan_id": w.world.customer_plan_id, "tenant_id": w.world.tenant_id}


def _recipients(_: Ids, __: Ids) -> dict[str, Any]:
    return {"emails": ["ops@example.com"], "events": ["failed"]}


def _provider_body(_: Ids, __: Ids) -> dict[str, Any]:
    return {"name": f"R {uuid.uuid4().hex[:8]}", "partner_center": {
        "tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4()), "client_secret": "s" * 20}}


RULES: dict[tuple[str, str], Rule] = {
    # users
    ("POST", "/v1/customers/{customer_id}/users"): Rule(ANY, "customer", lambda _, o: user_body()),
    ("GET", "/v1/customers/{customer_id}/users"): Rule(ANY, "customer"),
    ("POST", "/v1/customers/{customer_id}/users:bulk"): Rule(ANY, "customer", lambda _, o: {
        "user_plan_id": o.world.user_plan_id, "users": [user_body()]}),
    ("GET", "/v1/users/{user_id}"): Rule(ANY, "user"),
    ("PUT", "/v1/users/{user_id}/services/microsoft-online"): Rule(ANY, "user", lambda _, o: {
        "user_plan_id": o.world.user_plan_id}),
    ("DELETE", "/v1/users/{user_id}/services/microsoft-online"): Rule(ANY, "user"),
    # requests
    ("GET", "/v1/requests"): Rule(ANY, None),
    ("GET", "/v1/requests/{request_id}"): Rule(ANY, "request"),
    ("POST", "/v1/requests/{request_id}/retry"): Rule(ANY, "request"),
    ("POST", "/v1/requests/{request_id}/cancel"): Rule(ANY, "request"),
    # customers
    ("POST", "/v1/customers"): Rule(MANAGERS, "body-provider", lambda _, o: {
        "name": f"C {uuid.uuid4().hex[:8]}", "service_provider_id": o.world.provider_id}, role_first=True),
    ("GET", "/v1/customers"): Rule(ANY, None),
    ("GET", "/v1/customers/{customer_id}"): Rule(ANY, "customer"),
    ("GET", "/v1/customers/{customer_id}/tenant-search"): Rule(MANAGERS, "customer", query="?q=live"),
    ("GET", "/v1/customers/{customer_id}/licences"): Rule(ANY, "customer"),
    ("GET", "/v1/customers/{customer_id}/access"): Rule(ANY, "customer"),
    ("PUT", "/v1/customers/{customer_id}/services/azure-ad"): Rule(MANAGERS, "customer", lambda _, o: _connect(o)),
    ("GET", "/v1/customers/{customer_id}/services/microsoft-online"): Rule(ANY, "customer"),
    ("PUT", "/v1/customers/{customer_id}/services/microsoft-online"): Rule(MANAGERS, "customer", lambda _, o: {
        "plans": _plans(o)}),
    ("POST", "/v1/customers/{customer_id}/onboard"): Rule(MANAGERS, "customer", lambda _, o: {
        **_connect(o), "plans": _plans(o), "users": [{**user_body(), "user_plan_id": o.world.user_plan_id}]}),
    ("GET", "/v1/customers/{customer_id}/agreement"): Rule(ANY, "customer"),
    ("POST", "/v1/customers/{customer_id}/agreement"): Rule(MANAGERS, "customer", lambda _, o: {
        "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}),
    ("GET", "/v1/customers/{customer_id}/sync-policy"): Rule(ANY, "customer"),
    ("PUT", "/v1/customers/{customer_id}/sync-policy"): Rule(MANAGERS, "customer", lambda _, o: {
        "enabled": True, "interval_minutes": 60}),
    ("POST", "/v1/customers/{customer_id}/sync"): Rule(MANAGERS, "customer"),
    ("GET", "/v1/customers/{customer_id}/notifications"): Rule(ANY, "customer"),
    ("PUT", "/v1/customers/{customer_id}/notifications"): Rule(MANAGERS, "customer", _recipients),
    ("DELETE", "/v1/customers/{customer_id}/notifications"): Rule(MANAGERS, "customer"),
    # purchases (a direct reseller's; the matrix's resellers are indirect, so a manager's PUT is a 409)
    ("GET", "/v1/customers/{customer_id}/purchase-policy"): Rule(ANY, "customer"),
    ("PUT", "/v1/customers/{customer_id}/purchase-policy"): Rule(MANAGERS, "customer", lambda _, o: {
        "enabled": True, "max_units_per_day": 5}),
    ("GET", "/v1/customers/{customer_id}/purchases"): Rule(ANY, "customer"),
    # service providers: a customer key sees no provider, its own reseller included
    ("GET", "/v1/service-providers/{sp}/notifications"): Rule(MANAGERS, "provider", blind=frozenset({CUSTOMER})),
    ("PUT", "/v1/service-providers/{sp}/notifications"): Rule(MANAGERS, "provider", _recipients,
                                                              blind=frozenset({CUSTOMER})),
    ("POST", "/v1/service-providers"): Rule(OPERATORS, None, _provider_body),
    ("GET", "/v1/service-providers"): Rule(ANY, None),
    ("GET", "/v1/service-providers/{sp}"): Rule(MANAGERS, "provider", blind=frozenset({CUSTOMER})),
    ("GET", "/v1/service-providers/{sp}/services"): Rule(MANAGERS, "provider", blind=frozenset({CUSTOMER})),
    ("PUT", "/v1/service-providers/{sp}/services/azure-ad"): Rule(OPERATORS, "provider", lambda _, o: {
        "customer_plans": [o.world.customer_plan_id]}, blind=frozenset({CUSTOMER})),
    ("PUT", "/v1/service-providers/{sp}/services/microsoft-online"): Rule(OPERATORS, "provider", lambda _, o: {
        "user_plans": [o.world.user_plan_id]}, blind=frozenset({CUSTOMER})),
    # the same secret again: the live routes of this module keep working whatever runs first
    ("POST", "/v1/service-providers/{sp}/credentials"): Rule(MANAGERS, "provider", lambda _, o: {
        "client_secret": o.partner_secret}, blind=frozenset({CUSTOMER})),
    ("GET", "/v1/service-providers/{sp}/health"): Rule(MANAGERS, "provider", blind=frozenset({CUSTOMER})),
    ("GET", "/v1/service-providers/{sp}/purchase-policy"): Rule(MANAGERS, "provider",
                                                                blind=frozenset({CUSTOMER})),
    ("PUT", "/v1/service-providers/{sp}/purchase-policy"): Rule(MANAGERS, "provider", lambda _, o: {
        "enabled": False}, blind=frozenset({CUSTOMER})),
    # plans
    ("POST", "/v1/customer-plans"): Rule(OPERATORS, None, lambda _, o: {"name": f"CP {uuid.uuid4().hex[:8]}"}),
    ("GET", "/v1/customer-plans"): Rule(ANY, None),
    ("POST", "/v1/user-plans"): Rule(OPERATORS, None, lambda _, o: {
        "name": f"UP {uuid.uuid4().hex[:8]}", "licences": [{"sku_part_number": SKU}]}),
    ("GET", "/v1/user-plans"): Rule(ANY, None),
}


def _routes(app: Any) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in app.openapi()["paths"].items() for method in ops
            if path not in EXCLUDED and not path.startswith("/_emulator")]


def _own_reseller(em: Any, client: TestClient, operator: str) -> Ids:
    partner = {"tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4()), "client_secret": uuid.uuid4().hex}
    em.add_partner(**partner)
    slug = uuid.uuid4().hex[:10]
    tenant = em.add_tenant(company_name=f"Live {slug}", initial_domain=f"live{slug}.onmicrosoft.com",
                           domains=[{"name": f"live{slug}.example", "verified": True}],
                           skus=[{"sku_part_number": SKU, "units": 50, "service_plans": ["EXCHANGE_S_STANDARD"]}],
                           mca_signed=True, gdap="active", users=[], consented_apps=[partner["client_id"]])
    world = build_world(pc_tenant_id=partner["tenant_id"], client_id=partner["client_id"],
                        client_secret=partner["client_secret"], tenant_id=tenant["tenant_id"], skus=False)
    api = Api(client, operator)
    user = api.post(f"/v1/customers/{world.customer_id}/users", json=user_body())
    assert user.status_code == 201, user.text
    req = api.put(f"/v1/users/{user.json()['id']}/services/microsoft-online", json={"user_plan_id": world.user_plan_id})
    assert req.status_code == 202, req.text
    return Ids(world, partner["client_secret"], user.json()["id"], req.json()["request"]["id"])


@dataclass
class Matrix:
    client: TestClient
    operator: str
    ours: Ids
    theirs: Ids

    def key(self, role: str) -> str:
        return {OPERATOR: self.operator, SERVICE_PROVIDER: self.ours.world.sp_key,
                CUSTOMER: self.ours.world.customer_key}[role]


@pytest.fixture(scope="module")
def matrix(emulator: Any, app: Any) -> Iterator[Matrix]:
    """Two resellers in the emulator and the database, each with a customer, a user and a request; built once."""
    reset_settings()
    operator = new_key(OPERATOR)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Matrix(client, operator, _own_reseller(emulator, client, operator), _own_reseller(emulator, client,
                                                                                                operator))


def _path(template: str, ids: Ids) -> str:
    return (template.replace("{customer_id}", ids.world.customer_id).replace("{user_id}", ids.user_id)
            .replace("{request_id}", ids.request_id).replace("{sp}", ids.world.provider_id))


def _missing(app: Any) -> list[str]:
    return [f"{m} {p}" for m, p in _routes(app) if (m, p) not in RULES]


def test_every_route_has_a_rule(app: Any) -> None:
    missing = _missing(app)
    assert not missing, f"routes without a RULES row in tests/api/test_route_matrix.py: {missing}"


def test_every_rule_names_a_route(app: Any) -> None:
    """A row for a route that is gone (or misspelt) would test nothing: it fails instead."""
    stale = sorted(f"{m} {p}" for m, p in RULES if (m, p) not in _routes(app))
    assert not stale, f"RULES rows for routes the OpenAPI document does not have: {stale}"


def test_a_new_route_without_a_rule_is_named(api_env: Any) -> None:
    from api.app import create_app

    fresh = create_app()

    @fresh.get("/v1/customers/{customer_id}/something-new")
    def something_new(customer_id: str) -> None:
        """A route someone added without saying who may call it."""

    assert _missing(fresh) == ["GET /v1/customers/{customer_id}/something-new"]


def test_every_route_needs_a_key(raw: TestClient, app: Any) -> None:
    ids = "00000000-0000-4000-8000-000000000000"
    for method, path in _routes(app):
        url = path.replace("{customer_id}", ids).replace("{user_id}", ids).replace("{request_id}", ids) \
            .replace("{sp}", ids)
        r = raw.request(method, url, json={})
        assert r.status_code == 401, (method, path, r.status_code, r.text[:200])


CASES = [(method, path, role, whose) for (method, path), rule in RULES.items() for role in sorted(ANY)
         for whose in (("own", "foreign") if rule.obj and role != OPERATOR else ("own",))]


@pytest.mark.parametrize("method,path,role,whose", CASES)
def test_route_matrix(matrix: Matrix, app: Any, published: list[Any], method: str, path: str, role: str,
                      whose: str) -> None:
    rule = RULES[(method, path)]
    target = matrix.theirs if whose == "foreign" else matrix.ours
    body = rule.body(matrix.ours, target) if rule.body else None
    r = Api(matrix.client, matrix.key(role)).send(method, _path(path, target) + rule.query, json=body)
    got = (r.status_code, r.text[:300])
    if role not in rule.roles and (whose == "own" or rule.role_first):
        expected = 404 if role in rule.blind else 403
        assert r.status_code == expected, got
    elif whose == "foreign" or role in rule.blind:
        assert r.status_code == 404, got
    else:
        assert r.status_code not in (401, 403, 404), got
        assert r.status_code < 500, got
    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json"), got
