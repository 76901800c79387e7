"""Bulk and onboard bodies: validated in a worker thread, documented in OpenAPI, the same problem answers."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.testclient import TestClient

from api import bodies
from shared.settings import reset_settings
from tests.api.conftest import Api, World, problem_of, user_body


@pytest.mark.parametrize("path,model", [("/v1/customers/{customer_id}/users:bulk", "UsersBulkCreate"),
                                        ("/v1/customers/{customer_id}/onboard", "OnboardCreate")])
def test_openapi_still_documents_the_body(raw: TestClient, path: str, model: str) -> None:
    doc = raw.get("/openapi.json").json()
    body = doc["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}
    schemas = doc["components"]["schemas"]
    assert "users" in schemas[model]["properties"]
    ref = schemas[model]["properties"]["users"]["items"]["$ref"]  # the nested models are there too
    assert ref.rsplit("/", 1)[1] in schemas


def test_invalid_bodies_give_the_usual_problems(op: Api, world: World) -> None:
    url = f"/v1/customers/{world.customer_id}/users:bulk"
    err = problem_of(op.post(url, json={"users": [{"upn": 1}]}), 422, "validation_error")
    assert {"loc": ["body", "users", 0, "upn"], "msg": "Input should be a valid string", "type": "string_type"} \
        in err["errors"]
    err = problem_of(op.post(url, content=b"{bad", headers={"Content-Type": "application/json"}), 400,
                     "validation_error")
    assert err["errors"][0]["type"] == "json_invalid" and err["errors"][0]["loc"][0] == "body"
    assert problem_of(op.post(url, content=b""), 422, "validation_error")["errors"][0]["type"] == "missing"
    problem_of(op.post(url, content=b'{"users": []}', headers={"Content-Type": "text/plain"}), 422,
               "validation_error")
    err = problem_of(op.post(f"/v1/customers/{world.customer_id}/onboard", json={"plans": []}), 422,
                     "validation_error")
    assert ["body", "customer_plan_id"] in [e["loc"] for e in err["errors"]]


def test_healthz_answers_while_a_bulk_body_is_validated(op: Api, raw: TestClient, world: World,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    inside, release = threading.Event(), threading.Event()
    released: list[bool] = []
    real = bodies.validate

    def held(*args: Any) -> Any:
        inside.set()
        # The event loop being blocked would keep /healthz from answering, and only this guard would end it.
        released.append(release.wait(timeout=30))
        return real(*args)

    monkeypatch.setattr(bodies, "validate", held)
    answers: list[Any] = []
    body = {"user_plan_id": world.user_plan_id, "users": [user_body() for _ in range(5)]}
    poster = threading.Thread(target=lambda: answers.append(
        op.post(f"/v1/customers/{world.customer_id}/users:bulk", json=body)))
    poster.start()
    try:
        assert inside.wait(timeout=30)
        assert raw.get("/healthz").status_code == 200
    finally:
        release.set()
        poster.join(timeout=60)
    assert released == [True]  # /healthz answered while validation was still held
    assert answers[0].status_code == 202, answers[0].text


def test_onboard_obeys_bulk_max_users(op: Api, world: World, api_env: pytest.MonkeyPatch) -> None:
    try:
        api_env.setenv("BULK_MAX_USERS", "2")
        reset_settings()
        body = {"customer_plan_id": world.customer_plan_id, "tenant_id": world.tenant_id,
                "plans": [{"user_plan_id": world.user_plan_id}],
                "users": [{**user_body(), "user_plan_id": world.user_plan_id} for _ in range(3)]}
        err = problem_of(op.post(f"/v1/customers/{world.customer_id}/onboard", json=body), 422, "validation_error")
        assert "at most 2 users" in err["detail"]
        assert err["errors"] == [{"loc": ["body", "users"], "msg": "3 users; the limit is 2", "type": "too_long"}]
        body["users"] = body["users"][:2]
        assert op.post(f"/v1/customers/{world.customer_id}/onboard", json=body).status_code != 422
    finally:
        api_env.delenv("BULK_MAX_USERS")
        reset_settings()
