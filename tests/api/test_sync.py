"""Sync policy (defaults, replace, bounds) and "sync now"."""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, World, problem_of


def test_policy_defaults_then_replaced(op: Api, world: World) -> None:
    c = world.customer_id
    first = op.get(f"/v1/customers/{c}/sync-policy").json()
    # The guide: sync "will retrieve all users", so unknown users are imported by default.
    assert first == {"customer_id": c, "enabled": True, "interval_minutes": 60, "import_unknown_users": True,
                     "master": "microsoft", "next_run_at": None, "last_run_at": None}
    r = op.put(f"/v1/customers/{c}/sync-policy", json={"enabled": True, "interval_minutes": 15,
                                                       "import_unknown_users": True, "master": "local"})
    assert r.status_code == 200, r.text
    assert r.json()["interval_minutes"] == 15 and r.json()["master"] == "local" and r.json()["next_run_at"]
    assert op.get(f"/v1/customers/{c}/sync-policy").json() == r.json()
    off = op.put(f"/v1/customers/{c}/sync-policy", json={"enabled": False, "interval_minutes": 15}).json()
    assert off["enabled"] is False and off["next_run_at"] is None and off["import_unknown_users"] is True
    kept = op.put(f"/v1/customers/{c}/sync-policy", json={"enabled": True, "interval_minutes": 15,
                                                          "import_unknown_users": False}).json()
    assert kept["import_unknown_users"] is False  # still available


@pytest.mark.parametrize("body", [
    {"enabled": True, "interval_minutes": 4}, {"enabled": True, "interval_minutes": 10081},
    {"enabled": True, "interval_minutes": 60, "master": "both"}, {"enabled": True},
    {"enabled": "yes", "interval_minutes": 60}, {"enabled": True, "interval_minutes": "60"}])
def test_policy_bounds(op: Api, world: World, body: Any) -> None:
    problem_of(op.put(f"/v1/customers/{world.customer_id}/sync-policy", json=body), 422, "validation_error")


def test_sync_now(op: Api, world: World, make_world: Any, published: list[Any]) -> None:
    r = op.post(f"/v1/customers/{world.customer_id}/sync", json={"full": True})
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "customer.sync" and r.json()["params"] == {"full": True, "trigger": "manual"}
    again = op.post(f"/v1/customers/{world.customer_id}/sync")
    assert again.status_code == 202 and again.json()["id"] == r.json()["id"]  # the one already queued
    assert [p.id for p in published] == [r.json()["id"]]
    w = make_world(connected=False)
    problem_of(op.post(f"/v1/customers/{w.customer_id}/sync"), 409, "tenant_not_connected")
