"""Bad input of every kind answers a 4xx problem+json with a stable code, never a 500, never a partial write."""
from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from shared.db.models import User
from shared.db.uow import UnitOfWork
from tests.api.conftest import Api, World, problem_of, user_body


def test_unknown_route_is_a_problem(op: Api) -> None:
    problem_of(op.get("/v1/nothing-here"), 404, "not_found")


def test_wrong_method_is_a_problem_that_names_the_right_ones(op: Api) -> None:
    answer = op.send("PATCH", "/v1/customers")
    problem_of(answer, 405, "method_not_allowed")
    assert answer.headers["allow"] == "GET, POST"  # HTTP requires Allow on a 405
    assert answer.json()["detail"] == "PATCH is not allowed here; use GET, POST"


def test_malformed_json_is_400(op: Api, world: World) -> None:
    r = op.post(f"/v1/customers/{world.customer_id}/users", content=b'{"upn": "a@b.com",',
                headers={"content-type": "application/json"})
    problem_of(r, 400, "validation_error")


@pytest.mark.parametrize("body", [[], "text", 42, None, {"upn": 5}])
def test_wrong_types_are_422_with_field_errors(op: Api, world: World, body: Any) -> None:
    r = op.post(f"/v1/customers/{world.customer_id}/users", json=body)
    err = problem_of(r, 422, "validation_error")
    assert err["errors"] and all({"loc", "msg", "type"} <= set(e) for e in err["errors"])


def test_non_json_content_type_is_422(op: Api, world: World) -> None:
    r = op.post(f"/v1/customers/{world.customer_id}/users", content=b"upn=a@b.com",
                headers={"content-type": "application/x-www-form-urlencoded"})
    problem_of(r, 422, "validation_error")


def test_unknown_fields_are_refused(op: Api, world: World) -> None:
    r = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body(usage_locaton="GB"))
    err = problem_of(r, 422, "validation_error")
    assert ["body", "usage_locaton"] in [e["loc"] for e in err["errors"]]


def test_oversize_body_is_413(op: Api, world: World) -> None:
    big = b'{"name": "' + b"x" * 2_100_000 + b'"}'
    r = op.post("/v1/customers", content=big, headers={"content-type": "application/json"})
    problem_of(r, 413, "payload_too_large")


def test_oversize_chunked_body_is_413(op: Api) -> None:
    def chunks() -> Any:
        for _ in range(30):
            yield b"x" * 100_000
    r = op.post("/v1/customers", content=chunks(), headers={"content-type": "application/json"})
    problem_of(r, 413, "payload_too_large")


def test_small_chunked_body_passes_through(op: Api, world: World) -> None:
    import orjson

    def chunks() -> Any:
        yield orjson.dumps(user_body())
    r = op.post(f"/v1/customers/{world.customer_id}/users", content=chunks(),
                headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("path", ["/v1/customers/not-a-uuid", "/v1/users/%00", "/v1/requests/" + "a" * 300])
def test_malformed_ids_are_422(op: Api, path: str) -> None:
    problem_of(op.get(path), 422, "validation_error")


def test_unknown_ids_are_404(op: Api) -> None:
    for path in ("/v1/customers/00000000-0000-4000-8000-000000000000",
                 "/v1/users/00000000-0000-4000-8000-000000000000",
                 "/v1/requests/00000000-0000-4000-8000-000000000000",
                 "/v1/service-providers/00000000-0000-4000-8000-000000000000"):
        problem_of(op.get(path), 404, "not_found")


def test_nul_and_control_characters_are_422_not_500(op: Api, world: World) -> None:
    problem_of(op.post("/v1/customers", json={"name": "a\x00b", "service_provider_id": world.provider_id}),
               422, "validation_error")
    problem_of(op.post(f"/v1/customers/{world.customer_id}/users", json=user_body(first_name="A\x07")),
               422, "validation_error")
    problem_of(op.get("/v1/customers", params={"name": "x\x00"}), 422, "validation_error")


def test_invalid_cursor_is_422(op: Api) -> None:
    problem_of(op.get("/v1/requests", params={"cursor": "bm90LWEtY3Vyc29y"}), 422, "validation_error")
    problem_of(op.get("/v1/requests", params={"cursor": "WyIyMDI0LTAxLTAxIiwiYSJd"}), 422, "validation_error")


def test_a_failing_call_writes_nothing(op: Api, world: World) -> None:
    """Bulk with one bad user: 422 and no user at all."""
    users = [user_body(), user_body(), user_body(usage_location="XX")]
    r = op.post(f"/v1/customers/{world.customer_id}/users:bulk", json={"user_plan_id": world.user_plan_id,
                                                                         "users": users})
    err = problem_of(r, 422, "validation_error")
    assert [e["loc"][:4] for e in err["errors"]] == [["body", "users", 2, "usage_location"]]
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(func.count()).select_from(User).where(
            User.customer_id == world.customer_id)) == 0


def test_an_unknown_query_parameter_is_422_naming_it(op: Api, world: World) -> None:
    err = problem_of(op.get("/v1/requests", params={"stat": "failed"}), 422, "validation_error")
    assert [(e["loc"], e["type"]) for e in err["errors"]] == [(["query", "stat"], "extra_forbidden")]
    assert op.get("/v1/requests", params={"state": "failed", "limit": 5}).status_code == 200
    err = problem_of(op.get(f"/v1/customers/{world.customer_id}/tenant-search", params={"q": "x", "top": 1}),
                     422, "validation_error")
    assert [e["loc"] for e in err["errors"]] == [["query", "top"]]


def test_a_query_parameter_given_twice_is_422(op: Api, world: World) -> None:
    err = problem_of(op.get("/v1/requests?state=queued&state=failed"), 422, "validation_error")
    assert [(e["loc"], e["type"]) for e in err["errors"]] == [(["query", "state"], "repeated_parameter")]
    user = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body()).json()
    path = f"/v1/users/{user['id']}/services/microsoft-online"
    problem_of(op.delete(path + "?delete_user=false&delete_user=true"), 422, "validation_error")
    assert op.get(f"/v1/users/{user['id']}").json()["state"] == user["state"]  # nothing was started


def _every_operation(raw: TestClient) -> list[tuple[str, str]]:
    some_id = "00000000-0000-4000-8000-000000000000"
    paths = raw.get("/openapi.json").json()["paths"]
    return sorted((method.upper(), re.sub(r"\{[^}]+\}", some_id, path))
                  for path, operations in paths.items() for method in operations)


def test_every_operation_refuses_a_query_parameter_it_does_not_take(raw: TestClient, op: Api) -> None:
    """Routes without query parameters too: each declares its query (a model, or NO_QUERY), and one that
    forgets shows here."""
    operations = _every_operation(raw)
    assert len(operations) > 30
    accepting = []
    for method, path in operations:
        answer = op.send(method, path, params={"zzz": "1"})
        locs = [e["loc"] for e in answer.json().get("errors", [])] if answer.status_code == 422 else []
        if ["query", "zzz"] not in locs:
            accepting.append((method, path, answer.status_code))
    assert accepting == []


def test_a_busy_database_is_503_not_500(op: Api, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    from shared.customers import service

    def deadlocked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT", {}, Exception("deadlock detected"))

    monkeypatch.setattr(service, "get_customer", deadlocked)
    r = op.get(f"/v1/customers/{world.customer_id}")
    problem_of(r, 503, "temporarily_unavailable")
    assert r.headers["retry-after"] == "1"
