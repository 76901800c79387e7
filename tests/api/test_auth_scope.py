"""Keys and scopes: 401 without a valid key; another scope's object is 404 on every path; roles are 403."""
from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from shared.auth.keys import forget_cached_keys
from shared.db.models import ApiKey
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.security import api_key_prefix
from tests.api.conftest import Api, World, build_world, new_key, problem_of, user_body


@pytest.mark.parametrize("header", [None, "Basic abc", "Bearer", "Bearer not-a-key",
                                    "Bearer m365p_000000000000_" + "x" * 43])
def test_missing_or_invalid_key_is_401(raw: TestClient, operator_key: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = raw.get("/v1/customers", headers=headers)
    problem_of(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"


def test_revoked_key_stops_working(raw: TestClient) -> None:
    key = new_key("operator")
    assert raw.get("/v1/customers", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with UnitOfWork() as uow:
        uow.session.execute(update(ApiKey).where(ApiKey.prefix == api_key_prefix(key)).values(revoked_at=utcnow()))
        uow.commit()
    forget_cached_keys()  # the cache bounds how long a revoked key lives; tests do not wait for it
    problem_of(raw.get("/v1/customers", headers={"Authorization": f"Bearer {key}"}), 401, "unauthorized")


def test_tampered_key_with_a_known_prefix_is_401(raw: TestClient) -> None:
    key = new_key("operator")
    problem_of(raw.get("/v1/customers", headers={"Authorization": f"Bearer {key[:-2]}zz"}), 401, "unauthorized")


@pytest.fixture(scope="module")
def worlds(api_env: Any) -> tuple[World, World, dict[str, str]]:
    """Ours and a foreign reseller with a user and a request each."""
    ours, theirs = build_world(), build_world()
    op = new_key("operator")
    with TestClient(__import__("api.app", fromlist=["create_app"]).create_app()) as client:
        api = Api(client, op)
        user = api.post(f"/v1/customers/{theirs.customer_id}/users", json=user_body()).json()
        req = api.put(f"/v1/users/{user['id']}/services/microsoft-online",
                      json={"user_plan_id": theirs.user_plan_id}).json()["request"]
    return ours, theirs, {"user": user["id"], "request": req["id"]}


def foreign_calls(w: World, ids: dict[str, str]) -> list[tuple[str, str, Any]]:
    sp, c, u, r = w.provider_id, w.customer_id, ids["user"], ids["request"]
    plan = {"customer_plan_id": w.customer_plan_id, "tenant_id": str(uuid.uuid4())}
    return [
        ("GET", f"/v1/service-providers/{sp}", None),
        ("GET", f"/v1/service-providers/{sp}/services", None),
        ("PUT", f"/v1/service-providers/{sp}/services/azure-ad", {"customer_plans": [w.customer_plan_id]}),
        ("PUT", f"/v1/service-providers/{sp}/services/microsoft-online", {"user_plans": [w.user_plan_id]}),
        ("POST", "/v1/customers", {"name": "x", "service_provider_id": sp}),
        ("GET", f"/v1/customers/{c}", None),
        ("GET", f"/v1/customers/{c}/tenant-search?q=x", None),
        ("GET", f"/v1/customers/{c}/licences", None),
        ("PUT", f"/v1/customers/{c}/services/azure-ad", plan),
        ("PUT", f"/v1/customers/{c}/services/microsoft-online", {"plans": [{"user_plan_id": w.user_plan_id}]}),
        ("POST", f"/v1/customers/{c}/onboard", {**plan, "plans": [{"user_plan_id": w.user_plan_id}], "users": []}),
        ("GET", f"/v1/customers/{c}/agreement", None),
        ("POST", f"/v1/customers/{c}/agreement", {"first_name": "A", "last_name": "B", "email": "a@b.com"}),
        ("GET", f"/v1/customers/{c}/sync-policy", None),
        ("PUT", f"/v1/customers/{c}/sync-policy", {"enabled": True, "interval_minutes": 60}),
        ("POST", f"/v1/customers/{c}/sync", None),
        ("POST", f"/v1/customers/{c}/users", user_body()),
        ("GET", f"/v1/customers/{c}/users", None),
        ("POST", f"/v1/customers/{c}/users:bulk", {"user_plan_id": w.user_plan_id, "users": [user_body()]}),
        ("GET", f"/v1/users/{u}", None),
        ("PUT", f"/v1/users/{u}/services/microsoft-online", {"user_plan_id": w.user_plan_id}),
        ("DELETE", f"/v1/users/{u}/services/microsoft-online", None),
        ("GET", f"/v1/requests/{r}", None),
        ("POST", f"/v1/requests/{r}/retry", None),
        ("POST", f"/v1/requests/{r}/cancel", None),
    ]


@pytest.mark.parametrize("role", ["service-provider", "customer"])
def test_every_foreign_object_is_404(raw: TestClient, worlds: Any, role: str, published: list[Any]) -> None:
    ours, theirs, ids = worlds
    key = ours.sp_key if role == "service-provider" else ours.customer_key
    api = Api(raw, key)
    for method, path, body in foreign_calls(theirs, ids):
        r = api.send(method, path, json=body)
        if role == "customer" and path == "/v1/customers":
            problem_of(r, 403, "forbidden")  # a customer key creates no customers anywhere
            continue
        assert r.status_code == 404, (role, method, path, r.status_code, r.text[:200])
        problem_of(r, 404, "not_found")
    assert published == []


def test_customer_key_does_not_see_a_sibling_customer(raw: TestClient, worlds: Any) -> None:
    ours, _, _ = worlds
    sibling = Api(raw, ours.sp_key).post("/v1/customers", json={"name": "Sibling",
                                                                "service_provider_id": ours.provider_id}).json()
    problem_of(Api(raw, ours.customer_key).get(f"/v1/customers/{sibling['id']}"), 404, "not_found")


def test_lists_hold_only_what_the_key_sees(raw: TestClient, worlds: Any, operator_key: str) -> None:
    ours, theirs, ids = worlds
    for key in (ours.sp_key, ours.customer_key):
        api = Api(raw, key)
        customers = {c["id"] for c in api.get("/v1/customers", params={"limit": 1000}).json()["items"]}
        assert ours.customer_id in customers and theirs.customer_id not in customers
        assert api.get("/v1/requests", params={"customer_id": theirs.customer_id}).json()["items"] == []
        providers = api.get("/v1/service-providers").json()["items"]
        assert theirs.provider_id not in {p["id"] for p in providers}
        plans = {p["id"] for p in api.get("/v1/user-plans").json()["items"]}
        assert theirs.user_plan_id not in plans
    seen = Api(raw, operator_key).get("/v1/requests", params={"customer_id": theirs.customer_id}).json()["items"]
    assert ids["request"] in {r["id"] for r in seen}


def test_sp_and_customer_keys_see_their_own(raw: TestClient, worlds: Any) -> None:
    ours, _, _ = worlds
    sp = Api(raw, ours.sp_key)
    assert sp.get(f"/v1/service-providers/{ours.provider_id}").status_code == 200
    assert sp.get(f"/v1/service-providers/{ours.provider_id}/services").status_code == 200
    assert {p["id"] for p in sp.get("/v1/user-plans").json()["items"]} == {ours.user_plan_id}
    assert {p["id"] for p in sp.get("/v1/customer-plans").json()["items"]} == {ours.customer_plan_id}
    me = Api(raw, ours.customer_key)
    assert me.get(f"/v1/customers/{ours.customer_id}").status_code == 200
    assert {p["id"] for p in me.get("/v1/user-plans").json()["items"]} == {ours.user_plan_id}
    assert {p["id"] for p in me.get("/v1/customer-plans").json()["items"]} == {ours.customer_plan_id}
    problem_of(me.get(f"/v1/service-providers/{ours.provider_id}"), 404, "not_found")


@pytest.mark.parametrize("method,path,body", [
    ("POST", "/v1/service-providers", {"name": "x", "partner_center": {"tenant_id": "t", "client_id": "c",
                                                                       "client_secret": "s"}}),
    ("POST", "/v1/customer-plans", {"name": "x"}),
    ("POST", "/v1/user-plans", {"name": "x", "licences": [{"sku_part_number": "X"}]}),
])
def test_operator_only_collections_are_403(raw: TestClient, worlds: Any, method: str, path: str, body: Any) -> None:
    ours, _, _ = worlds
    for key in (ours.sp_key, ours.customer_key):
        problem_of(Api(raw, key).send(method, path, json=body), 403, "forbidden")


def test_sp_key_may_not_provision_its_own_services(raw: TestClient, worlds: Any) -> None:
    ours, _, _ = worlds
    sp = Api(raw, ours.sp_key)
    problem_of(sp.put(f"/v1/service-providers/{ours.provider_id}/services/azure-ad",
                      json={"customer_plans": [ours.customer_plan_id]}), 403, "forbidden")


@pytest.mark.parametrize("method,suffix,body", [
    ("GET", "/tenant-search?q=x", None),
    ("PUT", "/services/microsoft-online", {"plans": [{"user_plan_id": "00000000-0000-4000-8000-000000000000"}]}),
    ("POST", "/agreement", {"first_name": "A", "last_name": "B", "email": "a@b.com"}),
    ("PUT", "/sync-policy", {"enabled": True, "interval_minutes": 60}),
    ("POST", "/sync", None),
])
def test_customer_key_may_not_manage_its_customer(raw: TestClient, worlds: Any, method: str, suffix: str,
                                                  body: Any) -> None:
    ours, _, _ = worlds
    r = Api(raw, ours.customer_key).send(method, f"/v1/customers/{ours.customer_id}{suffix}", json=body)
    problem_of(r, 403, "forbidden")


def test_customer_key_self_service_users(raw: TestClient, worlds: Any, published: list[Any]) -> None:
    ours, _, _ = worlds
    me = Api(raw, ours.customer_key)
    user = me.post(f"/v1/customers/{ours.customer_id}/users", json=user_body())
    assert user.status_code == 201, user.text
    r = me.put(f"/v1/users/{user.json()['id']}/services/microsoft-online", json={"user_plan_id": ours.user_plan_id})
    assert r.status_code == 202, r.text
    assert me.get(f"/v1/requests/{r.json()['request']['id']}").status_code == 200


def test_retry_and_cancel_follow_the_role_rule_of_the_request_kind(raw: TestClient, operator_key: str,
                                                                   published: list[Any]) -> None:
    """`provider.*` operator only, `customer.*` reseller or operator, `user.*` any key in scope: seeing a
    request is not being allowed to stop it (a customer key once cancelled its customer's plans)."""
    w = build_world(services=False)
    op, sp, me = Api(raw, operator_key), Api(raw, w.sp_key), Api(raw, w.customer_key)
    provider_req = op.put(f"/v1/service-providers/{w.provider_id}/services/azure-ad",
                          json={"customer_plans": [w.customer_plan_id]})
    assert provider_req.status_code == 202, provider_req.text
    w2 = build_world()
    sp2, me2 = Api(raw, w2.sp_key), Api(raw, w2.customer_key)
    customer_req = Api(raw, operator_key).put(f"/v1/customers/{w2.customer_id}/services/microsoft-online",
                                              json={"plans": [{"user_plan_id": w2.user_plan_id}]})
    assert customer_req.status_code == 202, customer_req.text
    user = me2.post(f"/v1/customers/{w2.customer_id}/users", json=user_body()).json()
    user_req = me2.put(f"/v1/users/{user['id']}/services/microsoft-online", json={"user_plan_id": w2.user_plan_id})
    assert user_req.status_code == 202, user_req.text

    pid = provider_req.json()["id"]
    for action in ("retry", "cancel"):
        problem = problem_of(sp.post(f"/v1/requests/{pid}/{action}"), 403, "forbidden")
        assert "provider.azure_ad" in problem["detail"] and "operator only" in problem["detail"]
    assert me.get(f"/v1/requests/{pid}").status_code == 404  # a customer key does not even see it

    cid = customer_req.json()["id"]
    assert me2.get(f"/v1/requests/{cid}").status_code == 200  # seen, but not the customer key's to stop
    for action in ("retry", "cancel"):
        problem_of(me2.post(f"/v1/requests/{cid}/{action}"), 403, "forbidden")
    assert sp2.post(f"/v1/requests/{cid}/cancel").json()["state"] == "cancelled"

    uid = user_req.json()["request"]["id"]
    problem_of(me2.post(f"/v1/requests/{uid}/retry"), 409, "request_not_retryable")  # allowed, not failed
    assert me2.post(f"/v1/requests/{uid}/cancel").json()["state"] == "cancelled"
    assert op.post(f"/v1/requests/{pid}/cancel").json()["state"] == "cancelled"
