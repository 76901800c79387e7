"""The happy paths of the guide through the API, with the pipeline's effects simulated in the database."""
from __future__ import annotations

from typing import Any

from tests.api.conftest import SKU, Api, World, user_body


def test_provision_user_answers_202_with_password_and_request(op: Api, world: World, published: list[Any]) -> None:
    user = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body()).json()
    r = op.put(f"/v1/users/{user['id']}/services/microsoft-online", json={"user_plan_id": world.user_plan_id})
    assert r.status_code == 202, r.text
    body = r.json()
    assert len(body["temporary_password"]) >= 16
    req = body["request"]
    assert req["kind"] == "user.provision" and req["state"] == "queued"
    assert req["steps"][0]["name"] == "reserve_seat"
    assert req["links"]["self"] == f"/v1/requests/{req['id']}"
    assert body["temporary_password"] not in str(req["params"])
    assert [p.id for p in published] == [req["id"]]
    lic = op.get(f"/v1/customers/{world.customer_id}/licences")
    assert lic.status_code in (200, 502, 503)
    assert SKU
