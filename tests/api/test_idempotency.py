"""Idempotency-Key: same key and body replays the first answer; another body is 409; per API key."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, select
from starlette.testclient import TestClient

from shared.db.models import Customer, IdempotentAnswer
from shared.db.uow import UnitOfWork
from shared.idempotency import PASSWORD_WITHHELD
from tests.api.conftest import Api, World, new_key, problem_of, user_body


def test_same_key_same_body_replays_the_first_answer(op: Api, world: World, published: list[Any]) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = {"name": f"Idem {uuid.uuid4().hex[:6]}", "service_provider_id": world.provider_id}
    first = op.post("/v1/customers", json=body, headers=key)
    again = op.post("/v1/customers", json=dict(reversed(list(body.items()))), headers=key)  # key order is noise
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Customer).where(Customer.name == body["name"])) == 1


def test_same_key_other_body_is_409(op: Api, world: World) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    op.post("/v1/customers", json={"name": "A", "service_provider_id": world.provider_id}, headers=key)
    problem_of(op.post("/v1/customers", json={"name": "B", "service_provider_id": world.provider_id}, headers=key),
               409, "idempotency_conflict")


def test_same_key_other_query_is_409_not_a_replay(op: Api, world: World, published: list[Any]) -> None:
    user = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body()).json()["id"]
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    url = f"/v1/users/{user}/services/microsoft-online"
    provisioned = op.put(url, json={"user_plan_id": world.user_plan_id})
    op.post(f"/v1/requests/{provisioned.json()['request']['id']}/cancel")
    first = op.delete(url, params={"delete_user": "false"}, headers=key)
    assert first.status_code == 202, first.text
    # Replaying the `false` answer would silently skip the delete the caller asked for.
    problem_of(op.delete(url, params={"delete_user": "true"}, headers=key), 409, "idempotency_conflict")
    again = op.delete(url, params={"delete_user": "false"}, headers=key)
    assert again.json()["id"] == first.json()["id"] and again.headers["idempotent-replayed"] == "true"


def test_provisioning_replay_returns_the_request_and_says_the_password_was_shown_once(
        op: Api, world: World, published: list[Any]) -> None:
    user = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body()).json()
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    path = f"/v1/users/{user['id']}/services/microsoft-online"
    first = op.put(path, json={"user_plan_id": world.user_plan_id}, headers=key)
    again = op.put(path, json={"user_plan_id": world.user_plan_id}, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["temporary_password"] and again.headers["idempotent-replayed"] == "true"
    assert again.json() == {**first.json(), "temporary_password": None,
                            "temporary_password_note": PASSWORD_WITHHELD}
    assert len(published) == 1
    with UnitOfWork() as uow:  # the stored answer never held the password
        row = uow.session.scalar(select(IdempotentAnswer).where(IdempotentAnswer.key == key["Idempotency-Key"]))
        assert row is not None and first.json()["temporary_password"] not in str(row.body)


def test_keys_belong_to_one_api_key(raw: TestClient, world: World) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    a, b = Api(raw, new_key("operator")), Api(raw, new_key("operator"))
    ra = a.post("/v1/customers", json={"name": "Same", "service_provider_id": world.provider_id}, headers=key)
    rb = b.post("/v1/customers", json={"name": "Same", "service_provider_id": world.provider_id}, headers=key)
    assert ra.status_code == rb.status_code == 201 and ra.json()["id"] != rb.json()["id"]


def test_errors_are_not_stored(op: Api, world: World) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    user = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body()).json()
    path = f"/v1/users/{user['id']}/services/microsoft-online"
    other_plan = "00000000-0000-4000-8000-000000000000"
    problem_of(op.put(path, json={"user_plan_id": other_plan}, headers=key), 409, "plan_not_enabled")
    problem_of(op.put(path, json={"user_plan_id": other_plan}, headers=key), 409, "plan_not_enabled")


def test_concurrent_calls_with_one_key_do_the_work_once(op: Api, world: World, published: list[Any]) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    name = f"Race {uuid.uuid4().hex[:6]}"

    def call(_: int) -> Any:
        return op.post("/v1/customers", json={"name": name, "service_provider_id": world.provider_id}, headers=key)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(8)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["id"] for r in answers}) == 1
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Customer).where(Customer.name == name)) == 1


def test_bad_keys_are_422(op: Api, world: World) -> None:
    body = {"name": "x", "service_provider_id": world.provider_id}
    problem_of(op.post("/v1/customers", json=body, headers={"Idempotency-Key": "x" * 201}), 422, "validation_error")
    problem_of(op.post("/v1/customers", json=body, headers={"Idempotency-Key": "has space"}), 422,
               "validation_error")
