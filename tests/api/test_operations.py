"""/healthz, /readyz (database and broker), /metrics, and the OpenAPI document."""
from __future__ import annotations

import logging
from typing import Any

import pytest
from starlette.testclient import TestClient

from shared.settings import reset_settings
from tests.api.conftest import Api, World, problem_of


def test_healthz_needs_nothing(raw: TestClient) -> None:
    r = raw.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_readyz_with_a_memory_broker(raw: TestClient) -> None:
    r = raw.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ok"}


def _with_broker(api_env: pytest.MonkeyPatch, url: str) -> None:
    api_env.setenv("BROKER_URL", url)
    reset_settings()


def test_readyz_pings_a_redis_broker(raw: TestClient, api_env: pytest.MonkeyPatch, redis_url: str,
                                    caplog: pytest.LogCaptureFixture) -> None:
    try:
        _with_broker(api_env, redis_url)
        assert raw.get("/readyz").status_code == 200
        _with_broker(api_env, "redis://127.0.0.1:1/0")
        with caplog.at_level(logging.WARNING, logger="api"):
            r = raw.get("/readyz")
        # Which dependency fails, never why (the exception text names hosts): that goes to the log.
        assert r.status_code == 503 and r.json() == {"status": "failing",
                                                     "checks": {"database": "ok", "broker": "failing"}}
        assert "127.0.0.1:1" not in r.text
        assert any("broker failing" in rec.getMessage() and "ConnectionError" in rec.getMessage()
                   for rec in caplog.records)
    finally:
        _with_broker(api_env, "memory://")


def test_readyz_selects_from_an_sqla_broker(raw: TestClient, api_env: pytest.MonkeyPatch, pg_url: str,
                                            tmp_path: Any) -> None:
    try:
        _with_broker(api_env, f"sqla+sqlite:///{tmp_path}/broker.db")
        assert raw.get("/readyz").status_code == 200
        _with_broker(api_env, "sqla+" + pg_url.rsplit("/", 1)[0] + "/no_such_database")
        r = raw.get("/readyz")
        assert r.status_code == 503 and r.json() == {"status": "failing",
                                                     "checks": {"database": "ok", "broker": "failing"}}
        assert "no_such_database" not in r.text
    finally:
        _with_broker(api_env, "memory://")


def test_metrics_count_requests_by_route_and_requests_by_kind(op: Api, world: World, raw: TestClient) -> None:
    op.get(f"/v1/customers/{world.customer_id}")
    op.post(f"/v1/customers/{world.customer_id}/sync")
    text = raw.get("/metrics").text
    assert 'provisioner_http_requests_total{method="GET",route="/v1/customers/{customer_id}",status="200"}' in text
    assert 'provisioner_requests{kind="customer.sync",state="queued"}' in text
    assert "provisioner_http_request_duration_seconds_bucket" in text


def test_openapi_documents_problems_security_and_every_contract_path(raw: TestClient) -> None:
    doc = raw.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "Problem" in doc["components"]["schemas"] and "HTTPValidationError" not in doc["components"]["schemas"]
    contract = {
        ("post", "/v1/service-providers"), ("post", "/v1/customer-plans"), ("get", "/v1/customer-plans"),
        ("post", "/v1/user-plans"), ("get", "/v1/user-plans"),
        ("put", "/v1/service-providers/{sp}/services/azure-ad"),
        ("put", "/v1/service-providers/{sp}/services/microsoft-online"), ("get", "/v1/service-providers/{sp}/services"),
        ("post", "/v1/customers"), ("get", "/v1/customers"), ("get", "/v1/customers/{customer_id}"),
        ("get", "/v1/customers/{customer_id}/tenant-search"), ("put", "/v1/customers/{customer_id}/services/azure-ad"),
        ("get", "/v1/customers/{customer_id}/agreement"), ("post", "/v1/customers/{customer_id}/agreement"),
        ("get", "/v1/customers/{customer_id}/licences"),
        ("put", "/v1/customers/{customer_id}/services/microsoft-online"),
        ("post", "/v1/customers/{customer_id}/onboard"),
        ("post", "/v1/customers/{customer_id}/users"), ("get", "/v1/customers/{customer_id}/users"),
        ("get", "/v1/users/{user_id}"), ("put", "/v1/users/{user_id}/services/microsoft-online"),
        ("delete", "/v1/users/{user_id}/services/microsoft-online"), ("post", "/v1/customers/{customer_id}/users:bulk"),
        ("get", "/v1/requests/{request_id}"), ("get", "/v1/requests"), ("post", "/v1/requests/{request_id}/retry"),
        ("post", "/v1/requests/{request_id}/cancel"), ("get", "/v1/customers/{customer_id}/sync-policy"),
        ("put", "/v1/customers/{customer_id}/sync-policy"), ("post", "/v1/customers/{customer_id}/sync"),
        ("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"),
    }
    have = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert contract <= have, contract - have
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for status, answer in op["responses"].items():
                if status.startswith(("4", "5")) and (path, status) != ("/readyz", "503"):
                    assert list(answer["content"]) == ["application/problem+json"], (method, path, status)
            if path.startswith("/v1"):
                assert op.get("security") == [{"HTTPBearer": []}], (method, path)
    creating = doc["paths"]["/v1/users/{user_id}/services/microsoft-online"]["put"]
    assert "Idempotency-Key" in [p["name"] for p in creating["parameters"]]
    assert set(creating["responses"]) >= {"202", "401", "404", "409", "422"}


def test_openapi_lists_each_query_parameter_with_its_constraints(raw: TestClient) -> None:
    from shared.paging import MAX_LIMIT

    doc = raw.get("/openapi.json").json()

    def query(method: str, path: str) -> dict[str, Any]:
        return {p["name"]: p for p in doc["paths"][path][method].get("parameters", []) if p["in"] == "query"}

    requests = query("get", "/v1/requests")
    assert list(requests) == ["cursor", "limit", "state", "customer_id", "kind", "user_id", "parent_id"]
    assert requests["limit"]["schema"] | {"minimum": 1, "maximum": MAX_LIMIT} == requests["limit"]["schema"]
    assert requests["cursor"]["schema"]["anyOf"][0]["maxLength"] == 512
    assert "failed" in requests["state"]["schema"]["anyOf"][0]["enum"]
    search = query("get", "/v1/customers/{customer_id}/tenant-search")
    assert search["q"]["required"] is True and search["q"]["schema"]["minLength"] == 1
    assert search["limit"]["schema"]["maximum"] == 100
    users = query("get", "/v1/customers/{customer_id}/users")
    assert users["upn"]["description"] == "UPN prefix" and users["upn"]["schema"]["anyOf"][0]["maxLength"] == 113
    assert set(query("get", "/v1/customers")) == {"cursor", "limit", "service_provider_id", "name"}
    deprovision = query("delete", "/v1/users/{user_id}/services/microsoft-online")
    assert deprovision["delete_user"]["schema"]["type"] == "boolean" and not deprovision["delete_user"]["required"]
    assert query("get", "/v1/customers/{customer_id}") == {} and query("get", "/healthz") == {}


def test_metrics_token_guards_metrics(raw: TestClient, api_env: pytest.MonkeyPatch) -> None:
    token = "m" * 32
    try:
        api_env.setenv("METRICS_TOKEN", token)
        reset_settings()
        problem_of(raw.get("/metrics"), 401, "unauthorized")
        problem_of(raw.get("/metrics", headers={"Authorization": f"Bearer {token[:-1]}x"}), 401, "unauthorized")
        problem_of(raw.get("/metrics", headers={"Authorization": f"Basic {token}"}), 401, "unauthorized")
        r = raw.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and "provisioner_http_requests_total" in r.text
    finally:
        api_env.delenv("METRICS_TOKEN")
        reset_settings()
    assert raw.get("/metrics").status_code == 200  # unset: open, as before


def test_in_production_without_a_metrics_token_the_api_starts_with_metrics_closed(
        api_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from api.app import create_app

    try:
        with pytest.MonkeyPatch.context() as mp:  # puts back whatever the package had
            mp.setenv("ENVIRONMENT", "production")
            mp.setenv("SECRET_KEY", "s" * 32)
            mp.delenv("METRICS_TOKEN", raising=False)
            reset_settings()
            with TestClient(create_app()) as client:
                assert "METRICS_TOKEN" in capsys.readouterr().err  # said once, at start
                assert client.get("/healthz").status_code == 200
                problem = problem_of(client.get("/metrics"), 401, "unauthorized")
                assert "METRICS_TOKEN" in problem["detail"]
                problem_of(client.get("/metrics", headers={"Authorization": "Bearer anything-at-all-here"}), 401,
                           "unauthorized")
            mp.setenv("METRICS_TOKEN", "m" * 32)
            reset_settings()
            with TestClient(create_app()) as client:
                r = client.get("/metrics", headers={"Authorization": f"Bearer {'m' * 32}"})
                assert r.status_code == 200
    finally:
        reset_settings()
