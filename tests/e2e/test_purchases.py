"""Direct resellers buy the seats they lack, exactly once: worker + beat, Redis, Postgres, the emulator."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from emulator import catalog
from shared.agreements import mca
from shared.agreements.resume import resume_signed
from shared.auth.keys import create_key
from shared.db.models import Customer, PlanEnablement, Purchase, UserPlan
from shared.db.types import utcnow
from shared.purchases import ledger, policy
from shared.purchases.resume import resume_customer
from shared.requests import kinds
from shared.requests.service import ref
from tests.builders import Builder, Licence
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack
from tests.harness.processes import Processes
from tests.harness.seeding import Seeder, Tenant, quiet_emulator
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 60
FAST = {"PURCHASE_POLL_S": "0.5", "PURCHASE_RESUME_INTERVAL_S": "1"}


@pytest.fixture(scope="module")
def stack(emulator, pipeline_env) -> Iterator[Processes]:
    with fresh_stack(pipeline_env, emulator, settings=FAST, purchase_delay_s=1.0) as procs:
        procs.worker(concurrency=4)
        procs.beat()
        yield procs


def _direct(seeder: Seeder, *, units: int = 1, enabled: bool = True, **limits: Any) -> Tenant:
    tenant = seeder.tenant(units=units, provider_kind="direct")
    with seeder.session() as s:
        policy.put(s, service_provider_id=tenant.provider_id, customer_id=tenant.customer_id, enabled=enabled,
                   max_units_per_day=limits.get("per_day"), max_units_per_order=limits.get("per_order"))
        s.commit()
    return tenant


def _quantity(emulator, tenant: Tenant) -> int:
    return int(emulator.tenant(tenant.tenant_id)["skus"][0]["units"])


def _purchases(seeder: Seeder, tenant: Tenant) -> list[Purchase]:
    with seeder.session() as s:
        return list(s.scalars(select(Purchase).where(Purchase.customer_id == tenant.customer_id)))


def _bought(emulator, tenant: Tenant) -> int:
    return int(emulator.stats()["by_tenant"].get(tenant.tenant_id, {}).get("purchases", 0))


def _run(seeder, stack, refs, want):
    publish(refs)
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT)
    assert states == want, (states, stack.logs()[-6000:])


def _blocked_on(seeder, refs) -> set[str | None]:
    return {seeder.get(r.id).blocked_reason for r in refs if seeder.get(r.id).state == kinds.BLOCKED}


def test_one_seat_three_users_buys_exactly_two_and_reprovisioning_buys_nothing(seeder, emulator, stack):
    tenant = _direct(seeder, units=1)
    refs = seeder.users(tenant, ["ann", "bob", "cat"])
    _run(seeder, stack, refs, {kinds.SUCCEEDED: 3})
    assert _quantity(emulator, tenant) == 3
    rows = _purchases(seeder, tenant)
    assert 1 <= len(rows) <= 2 and sum(p.units for p in rows) == 2
    assert all(p.state == ledger.VISIBLE and p.ms_request_id for p in rows)
    assert sorted(r for p in rows for r in p.request_ids) == sorted(set(r for p in rows for r in p.request_ids))
    assert _bought(emulator, tenant) == len(rows)
    assert emulator.stats()["by_tenant"][tenant.tenant_id]["licence_assignments"] == 3
    again = seeder.reprovision(seeder.get(refs[0].id).user_id, tenant.plan_id)
    _run(seeder, stack, [again], {kinds.SUCCEEDED: 1})
    assert _quantity(emulator, tenant) == 3 and len(_purchases(seeder, tenant)) == len(rows)


def test_policy_off_blocks_then_turning_it_on_resumes(seeder, emulator, stack):
    tenant = _direct(seeder, units=1, enabled=False)
    refs = seeder.users(tenant, ["dan", "eva"])
    publish(refs)
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT)
    assert states == {kinds.BLOCKED: 2}, (states, stack.logs()[-6000:])
    assert _blocked_on(seeder, refs) == {"purchase_limit"}
    assert _quantity(emulator, tenant) == 1 and _bought(emulator, tenant) == 0
    with seeder.session() as s:  # what PUT purchase-policy does
        policy.put(s, service_provider_id=tenant.provider_id, customer_id=tenant.customer_id, enabled=True,
                   max_units_per_day=None, max_units_per_order=None)
        resumed = resume_customer(s, tenant.customer_id, tenant.provider_id, utcnow())
        s.commit()
    _run(seeder, stack, resumed, {kinds.SUCCEEDED: 2})
    assert _quantity(emulator, tenant) == 2


def test_through_the_api_a_policy_put_resumes_and_the_purchase_is_listed(seeder, emulator, stack):
    """The reseller's own calls, over HTTP to `provisioner api`, against the emulator: blocked with the policy
    off, a customer key may not turn it on, the reseller's PUT resumes, the ledger and licences show it."""
    tenant = _direct(seeder, units=1, enabled=False)
    with seeder.session() as s:
        reseller = create_key(s, "service-provider", tenant.provider_id, name="purchases-e2e")
        customer = create_key(s, "customer", tenant.customer_id, name="purchases-e2e")
        s.commit()
    refs = seeder.users(tenant, ["gus", "hal"])
    publish(refs)
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT)
    assert states == {kinds.BLOCKED: 2}, (states, stack.logs()[-6000:])
    assert _blocked_on(seeder, refs) == {"purchase_limit"}
    port = stack.api()
    c = f"/v1/customers/{tenant.customer_id}"
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
        as_reseller = {"Authorization": f"Bearer {reseller}"}
        assert api.get(f"{c}/purchases", headers=as_reseller).json() == {"items": []}
        assert api.get(f"{c}/purchase-policy", headers=as_reseller).json()["enabled"] is False
        body = {"enabled": True, "max_units_per_day": 5, "max_units_per_order": 5}
        refused = api.put(f"{c}/purchase-policy", json=body, headers={"Authorization": f"Bearer {customer}"})
        assert refused.status_code == 403, refused.text
        put = api.put(f"{c}/purchase-policy", json=body, headers=as_reseller)
        assert put.status_code == 200 and put.json()["source"] == "customer", put.text
        states = seeder.wait([r.id for r in refs], timeout=TIMEOUT)
        assert states == {kinds.SUCCEEDED: 2}, (states, stack.logs()[-6000:])
        [bought] = api.get(f"{c}/purchases", headers=as_reseller).json()["items"]
        assert (bought["from_quantity"], bought["to_quantity"]) == (1, 2)
        assert bought["units"] == 1 and bought["state"] == "visible"
        assert bought["request_ids"] and set(bought["request_ids"]) <= {r.id for r in refs}
        [sku] = api.get(f"{c}/licences", headers=as_reseller).json()["items"]
        assert sku["total"] == 2 and sku["unused"] == sku["total"] - sku["consumed"]
    assert _quantity(emulator, tenant) == 2 and _bought(emulator, tenant) == 1


def test_daily_cap_blocks_the_rest_until_the_cap_is_raised(seeder, emulator, stack):
    tenant = _direct(seeder, units=1, per_day=1)
    refs = seeder.users(tenant, ["fay", "gus", "hal"])
    publish(refs)
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT)
    assert states.get(kinds.SUCCEEDED, 0) >= 1 and states.get(kinds.BLOCKED, 0) >= 1, (states, stack.logs()[-6000:])
    assert _blocked_on(seeder, refs) == {"purchase_limit"}
    assert _quantity(emulator, tenant) == 2  # the cap: one unit a day
    with seeder.session() as s:
        policy.put(s, service_provider_id=tenant.provider_id, customer_id=tenant.customer_id, enabled=True,
                   max_units_per_day=5, max_units_per_order=None)
        s.commit()
    # The beat pass (PURCHASE_RESUME_INTERVAL_S=1) resumes them: no call from here.
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT, final=kinds.FINAL_STATES)
    assert states == {kinds.SUCCEEDED: 3}, (states, stack.logs()[-6000:])
    assert _quantity(emulator, tenant) == 3


def test_no_mca_blocks_and_signing_it_resumes(seeder, emulator, stack):
    tenant = _direct(seeder, units=1)
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}", json={"mca_signed": False}).raise_for_status()
    refs = seeder.users(tenant, ["ida", "jon"])
    publish(refs)
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT)
    assert states == {kinds.BLOCKED: 2}, (states, stack.logs()[-6000:])
    assert _blocked_on(seeder, refs) == {"mca_not_signed"}
    assert _quantity(emulator, tenant) == 1
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}", json={"mca_signed": True}).raise_for_status()
    # Recorded as the API's POST .../agreement records it (the 403 had stored it unsigned); then the beat's pass.
    with seeder.session() as s:
        mca.remember(s, tenant.customer_id, mca.AgreementView(True, "2026-01-01", None), utcnow())
        s.commit()
    resumed = resume_signed()
    assert resumed
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT, final=kinds.FINAL_STATES)
    assert states == {kinds.SUCCEEDED: 2}, (states, stack.logs()[-6000:])
    assert _quantity(emulator, tenant) == 2


def test_lost_answers_and_a_killed_worker_still_buy_exactly_what_is_missing(seeder, emulator, pipeline_env):
    # Every answer to a purchase is lost (the quantity changes, the caller sees a 500, replays included): the
    # engine learns the outcome only by reading the quantity back.
    tenant = _direct(seeder, units=1)
    refs = seeder.users(tenant, [f"k{i}" for i in range(6)])
    ids = [r.id for r in refs]
    lost_before = emulator.stats()["lost_answers"]
    with fresh_stack(pipeline_env, emulator, settings=FAST, lost_answer_rate=1.0, purchase_delay_s=1.0,
                     latency_ms={"mean": 150, "jitter": 50}) as procs:
        procs.worker("w1", concurrency=3)
        procs.beat()
        publish(refs)
        # Kill w1 once a purchase is on its way to Partner Center (its target and request id committed).
        deadline = utcnow().timestamp() + 30
        while not any(p.state != ledger.PENDING for p in _purchases(seeder, tenant)):
            assert utcnow().timestamp() < deadline, procs.logs()[-6000:]
        procs.kill("w1")
        procs.worker("w2", concurrency=3)
        states = seeder.wait(ids, timeout=120, final=kinds.FINAL_STATES)
        assert states == {kinds.SUCCEEDED: 6}, (states, procs.logs()[-8000:])
    assert _quantity(emulator, tenant) == 6
    rows = _purchases(seeder, tenant)
    assert sum(p.units for p in rows) == 5 and all(p.state == ledger.VISIBLE for p in rows)
    # Partner Center accepted one quantity change per purchase row: no replay or re-send bought again.
    assert _bought(emulator, tenant) == len(rows)
    assert emulator.stats()["lost_answers"] > lost_before
    quiet_emulator(emulator, purchase_delay_s=1.0)  # the module's faults again, for the tests after this one


def test_a_sku_the_tenant_lacks_is_ordered_once_through_a_cart(seeder, emulator, stack):
    tenant = _direct(seeder, units=1)
    with seeder.session() as s:  # a plan of a SKU the tenant has no subscription for, naming its offer
        b = Builder(s)
        customer = s.get(Customer, tenant.customer_id)
        plan = b.user_plan([Licence("SPB")])
        plan.licences[0].offer_id = catalog.catalog_item_id("SPB")
        s.add(PlanEnablement(customer_id=customer.id, user_plan_id=plan.id, enabled=True))
        s.flush()
        refs = [ref(b.provision(b.user(customer, f"o{i}@{tenant.domain}", plan=s.get(UserPlan, plan.id)), plan))
                for i in range(2)]
        s.commit()
    emulator.set_faults(lost_answer_rate=1.0)  # every checkout answer lost: the order is read back
    try:
        _run(seeder, stack, refs, {kinds.SUCCEEDED: 2})
    finally:
        emulator.set_faults(lost_answer_rate=0.0)
    spb = next(k for k in emulator.tenant(tenant.tenant_id)["skus"] if k["sku_part_number"] == "SPB")
    assert spb["units"] == 2 and spb["consumed"] == 2
    [order] = [p for p in _purchases(seeder, tenant) if p.sku_part_number == "SPB"]
    assert (order.kind, order.units, order.state) == ("order", 2, ledger.VISIBLE) and order.ms_request_id
    assert _bought(emulator, tenant) == 1
