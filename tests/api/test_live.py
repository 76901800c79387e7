"""Live calls against the Microsoft emulator: tenant search, the MCA (read and record), the licence view."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from shared.db.models import Agreement, ProvisioningRequest, TenantSku
from shared.db.uow import UnitOfWork
from shared.requests import kinds
from tests.api.conftest import SKU, Api, build_live_world, problem_of, user_body


@pytest.fixture
def live(emulator: Any) -> Any:
    return build_live_world(emulator)


def test_tenant_search_merges_domain_and_company_matches(op: Api, emulator: Any, live: Any) -> None:
    company = live.tenant["company_name"]
    r = op.get(f"/v1/customers/{live.world.customer_id}/tenant-search", params={"q": company[:8]})
    assert r.status_code == 200, r.text
    ids = [m["tenant_id"] for m in r.json()["items"]]
    assert live.tenant["tenant_id"] in ids
    assert len(ids) == len(set(ids))
    by_domain = op.get(f"/v1/customers/{live.world.customer_id}/tenant-search",
                       params={"q": live.tenant["initial_domain"][:12]}).json()["items"]
    assert [m["tenant_id"] for m in by_domain] == [live.tenant["tenant_id"]]
    assert by_domain[0]["domain"] == live.tenant["initial_domain"]


def test_agreement_read_live_then_recorded_resumes_blocked_requests(op: Api, live: Any,
                                                                     published: list[Any]) -> None:
    c = live.world.customer_id
    first = op.get(f"/v1/customers/{c}/agreement")
    assert first.status_code == 200, first.text
    assert first.json() == {"signed": False, "date_agreed": None, "primary_contact": None}
    with UnitOfWork() as uow:  # a request the pipeline blocked on the missing MCA
        req = uow.session.get(ProvisioningRequest, op.put(
            f"/v1/customers/{c}/services/azure-ad",
            json={"customer_plan_id": live.world.customer_plan_id, "tenant_id": live.tenant["tenant_id"]},
        ).json()["id"])
        assert req is not None
        req.state, req.blocked_reason = kinds.BLOCKED, "mca_not_signed"
        uow.commit()
    published.clear()
    r = op.post(f"/v1/customers/{c}/agreement", json={"first_name": "Ada", "last_name": "Lovelace",
                                                       "email": "ada@example.com", "phone": "+44 20 1234"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["signed"] is True and body["primary_contact"]["email"] == "ada@example.com"
    assert [p.id for p in published] == [req.id]
    with UnitOfWork() as uow:
        assert uow.session.get(ProvisioningRequest, req.id).state == kinds.QUEUED  # type: ignore[union-attr]
        row = uow.session.scalar(select(Agreement).where(Agreement.customer_id == c))
        assert row is not None and row.signed
    again = op.get(f"/v1/customers/{c}/agreement").json()
    assert again["signed"] is True and again["primary_contact"]["first_name"] == "Ada"
    # Recording it twice is not an error: Partner Center's "already exists" counts as done.
    assert op.post(f"/v1/customers/{c}/agreement", json={"first_name": "Ada", "last_name": "Lovelace",
                                                          "email": "ada@example.com"}).status_code == 201


def test_licences_read_live_and_count_reservations(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator, units=5, mca_signed=True)
    c = live.world.customer_id
    r = op.get(f"/v1/customers/{c}/licences")
    assert r.status_code == 200, r.text
    [sku] = r.json()["items"]
    assert sku["sku_part_number"] == SKU and sku["total"] == 5 and sku["consumed"] == 0
    assert sku["free"] == 5 and sku["reserved"] == 0 and sku["sku_id"]
    user = op.post(f"/v1/customers/{c}/users", json=user_body()).json()
    assert op.put(f"/v1/users/{user['id']}/services/microsoft-online",
                  json={"user_plan_id": live.world.user_plan_id}).status_code == 202
    [sku] = op.get(f"/v1/customers/{c}/licences").json()["items"]
    assert sku["reserved"] == 1 and sku["free"] == 4
    assert sku["unused"] == 5  # paid for and assigned to nobody: a held seat is still unused


def test_first_provisioning_reads_skus_live_when_none_are_known(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator, units=1, mca_signed=True)
    c = live.world.customer_id
    users = [op.post(f"/v1/customers/{c}/users", json=user_body()).json() for _ in range(2)]
    ok = op.put(f"/v1/users/{users[0]['id']}/services/microsoft-online", json={"user_plan_id": live.world.user_plan_id})
    assert ok.status_code == 202, ok.text
    with UnitOfWork() as uow:
        assert uow.session.scalars(select(TenantSku.total).where(TenantSku.customer_id == c)).all() == [1]
    full = op.put(f"/v1/users/{users[1]['id']}/services/microsoft-online",
                  json={"user_plan_id": live.world.user_plan_id})
    problem_of(full, 409, "no_free_licences")


def test_live_calls_need_a_connected_tenant(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator, connected=False)
    for path in ("agreement", "licences"):
        problem_of(op.get(f"/v1/customers/{live.world.customer_id}/{path}"), 409, "tenant_not_connected")


def test_licences_come_from_partner_center_and_need_no_gdap(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator, units=4, gdap="none")
    before = emulator.stats()["requests"]
    r = op.get(f"/v1/customers/{live.world.customer_id}/licences")
    assert r.status_code == 200, r.text
    [sku] = r.json()["items"]
    [seeded] = live.tenant["skus"]
    assert (sku["sku_part_number"], sku["sku_id"], sku["total"], sku["free"]) == (SKU, seeded["sku_id"], 4, 4)
    after = emulator.stats()["requests"]
    calls = {route: sum(after[route].values()) - sum(before.get(route, {}).values()) for route in after}
    assert any("subscribedskus" in route and n for route, n in calls.items()), calls
    assert not any("subscribedSkus" in route and n for route, n in calls.items()), calls  # not Graph's


def test_microsoft_throttling_answers_503_with_retry_after(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator)
    emulator.set_faults(error_rate=1.0)
    try:
        r = op.get(f"/v1/customers/{live.world.customer_id}/agreement")
    finally:
        emulator.reset()
    problem_of(r, 503, "microsoft_unavailable")
    assert int(r.headers["Retry-After"]) >= 1


def test_wrong_partner_secret_answers_502(op: Api, emulator: Any) -> None:
    live = build_live_world(emulator, client_secret="not-the-secret")
    problem_of(op.get(f"/v1/customers/{live.world.customer_id}/tenant-search", params={"q": "x"}), 502,
               "microsoft_unavailable")


def test_seats_bought_since_the_last_read_are_seen_before_refusing(op: Api, emulator: Any, monkeypatch: Any) -> None:
    from shared.users import checks

    live = build_live_world(emulator, units=1, mca_signed=True)
    c = live.world.customer_id
    users = [op.post(f"/v1/customers/{c}/users", json=user_body()).json() for _ in range(2)]
    assert op.put(f"/v1/users/{users[0]['id']}/services/microsoft-online",
                  json={"user_plan_id": live.world.user_plan_id}).status_code == 202
    tenant = live.tenant["tenant_id"]
    emulator._control.patch(f"/_emulator/tenants/{tenant}",  # the reseller buys a second seat
                            json={"skus": [{"sku_part_number": SKU, "units": 2}]}).raise_for_status()
    monkeypatch.setattr(checks, "RECOUNT_AFTER", checks.timedelta(0))  # our counts are "old" at once
    second = op.put(f"/v1/users/{users[1]['id']}/services/microsoft-online",
                    json={"user_plan_id": live.world.user_plan_id})
    assert second.status_code == 202, second.text
    with UnitOfWork() as uow:
        assert uow.session.scalars(select(TenantSku.total).where(TenantSku.customer_id == c)).all() == [2]


def test_an_mca_signed_in_the_portal_unblocks_without_a_manual_read(op: Api, emulator: Any) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from shared.db.types import utcnow

    live = build_live_world(emulator, units=3, mca_signed=False, mca=False)
    c = live.world.customer_id
    user = op.post(f"/v1/customers/{c}/users", json=user_body()).json()
    body = {"user_plan_id": live.world.user_plan_id}
    problem_of(op.put(f"/v1/users/{user['id']}/services/microsoft-online", json=body), 409, "mca_not_signed")
    # The customer accepts the MCA in the Partner Center portal; our "not signed" is now two minutes old.
    emulator._control.patch(f"/_emulator/tenants/{live.tenant['tenant_id']}",
                            json={"mca_signed": True}).raise_for_status()
    with UnitOfWork() as uow:
        uow.session.execute(update(Agreement).where(Agreement.customer_id == c)
                            .values(checked_at=utcnow() - timedelta(minutes=2)))
        uow.commit()
    r = op.put(f"/v1/users/{user['id']}/services/microsoft-online", json=body)
    assert r.status_code == 202, r.text
    with UnitOfWork() as uow:
        row = uow.session.scalar(select(Agreement).where(Agreement.customer_id == c))
        assert row is not None and row.signed
    plans = {"plans": [{"user_plan_id": live.world.user_plan_id, "hard_limit": 2}]}
    assert op.put(f"/v1/customers/{c}/services/microsoft-online", json=plans).status_code == 202
