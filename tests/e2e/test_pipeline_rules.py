"""The guide's rules, each through the real pipeline: worker + beat, Redis, Postgres, the emulator."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from shared.db.models import PlanEnablement, SeatReservation
from shared.requests import kinds
from shared.requests.service import resume_blocked
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack
from tests.harness.processes import Processes
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 60


@pytest.fixture(scope="module")
def stack(emulator, pipeline_env) -> Iterator[Processes]:
    with fresh_stack(pipeline_env, emulator, mailbox_delay_s={"first": 1, "next": 1}) as procs:
        procs.worker(concurrency=4)
        procs.beat()
        yield procs


def _run(seeder, stack, refs, want=None):
    publish(refs)
    states = seeder.wait([r.id for r in refs], timeout=TIMEOUT)
    if want is not None:
        assert states == want, (states, stack.logs()[-4000:])
    return states


def _entra(emulator, tenant, upn):
    return next((u for u in emulator.tenant(tenant.tenant_id)["users"] if u["userPrincipalName"].lower() == upn), None)


def _created(emulator, tenant):
    return emulator.stats()["by_tenant"].get(tenant.tenant_id, {}).get("users_created", 0)


def test_an_existing_entra_user_is_linked_and_nothing_is_created(seeder, emulator, stack):
    tenant = seeder.tenant()
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}", json={
        "users": [{"userPrincipalName": f"ann@{tenant.domain}", "usageLocation": "NL",
                   "displayName": "Ann Existing", "accountEnabled": True, "mailNickname": "ann"}]}).raise_for_status()
    [ref] = seeder.users(tenant, ["ann"])
    _run(seeder, stack, [ref], {kinds.SUCCEEDED: 1})
    user = seeder.user(seeder.get(ref.id).user_id)
    assert user.entra_id == _entra(emulator, tenant, f"ann@{tenant.domain}")["id"]
    assert _created(emulator, tenant) == 0


def test_a_user_on_an_unverified_domain_gets_the_onmicrosoft_upn_then_its_own_once_verified(seeder, emulator, stack):
    tenant = seeder.tenant(unverified=["later.example"])
    [ref] = seeder.users(tenant, ["bea"], domain="later.example")
    _run(seeder, stack, [ref], {kinds.SUCCEEDED: 1})
    assert _entra(emulator, tenant, f"bea@{tenant.initial_domain}") is not None
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}",
                            json={"domains": [{"name": "later.example", "verified": True}]}).raise_for_status()
    again = seeder.reprovision(seeder.get(ref.id).user_id, tenant.plan_id)
    _run(seeder, stack, [again], {kinds.SUCCEEDED: 1})
    assert _entra(emulator, tenant, "bea@later.example") is not None
    assert _entra(emulator, tenant, f"bea@{tenant.initial_domain}") is None
    assert _created(emulator, tenant) == 1
    assert seeder.user(seeder.get(ref.id).user_id).entra_upn == "bea@later.example"


def test_licences_only_where_a_seat_is_free(seeder, emulator, stack):
    tenant = seeder.tenant(units=1)
    refs = seeder.users(tenant, ["cy", "dee"])
    states = _run(seeder, stack, refs)
    assert states == {kinds.SUCCEEDED: 1, kinds.FAILED: 1}, stack.logs()[-4000:]
    failed = next(seeder.get(r.id) for r in refs if seeder.get(r.id).state == kinds.FAILED)
    assert failed.error_code == "no_free_licences" and failed.current_step == "assign_licences"
    # The user this request created is left without a licence: the request says so, naming it.
    upn = seeder.user(failed.user_id).upn
    assert "this request created" in failed.error_message and upn.split("@")[0] in failed.error_message
    with seeder.session() as s:
        assert s.scalars(select(SeatReservation.state).where(SeatReservation.request_id == failed.id)).all() == [
            "released"]
    assert emulator.stats()["by_tenant"][tenant.tenant_id]["licence_assignments"] == 1


def test_mca_blocks_microsoft_online_then_recording_it_resumes(seeder, emulator, stack):
    tenant = seeder.tenant(mca_signed=False)
    ref = seeder.request(kinds.CUSTOMER_MICROSOFT_ONLINE, tenant,
                         params={"plans": [{"user_plan_id": tenant.plan_id, "hard_limit": 5}]})
    _run(seeder, stack, [ref], {kinds.BLOCKED: 1})
    assert seeder.get(ref.id).blocked_reason == "mca_not_signed"
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}", json={"mca_signed": True}).raise_for_status()
    with seeder.session() as s:
        refs = resume_blocked(s, customer_id=tenant.customer_id, reason="mca_not_signed")
        s.commit()
    _run(seeder, stack, refs, {kinds.SUCCEEDED: 1})
    with seeder.session() as s:
        row = s.scalar(select(PlanEnablement).where(PlanEnablement.customer_id == tenant.customer_id))
        assert row.enabled and row.hard_limit == 5


def test_microsoft_online_is_never_enabled_before_azure_ad_connected_the_tenant(seeder, emulator, stack):
    tenant = seeder.tenant(connected=False)
    ref = seeder.request(kinds.CUSTOMER_MICROSOFT_ONLINE, tenant,
                         params={"plans": [{"user_plan_id": tenant.plan_id, "hard_limit": None}]})
    _run(seeder, stack, [ref], {kinds.FAILED: 1})
    assert seeder.get(ref.id).error_code == "tenant_not_connected"


def test_the_hard_limit_bounds_self_service(seeder, emulator, stack):
    tenant = seeder.tenant(hard_limit=1)
    refs = seeder.users(tenant, ["eve", "fay"], created_by_role="customer")
    assert _run(seeder, stack, refs) == {kinds.SUCCEEDED: 1, kinds.FAILED: 1}
    codes = {seeder.get(r.id).error_code for r in refs}
    assert codes == {None, "plan_limit_reached"}
    assert _created(emulator, tenant) == 1


def test_onboarding_with_users_starts_the_users_once_the_customer_succeeded(seeder, emulator, stack):
    tenant = seeder.tenant(connected=False)
    parent = seeder.request(kinds.CUSTOMER_ONBOARD, tenant, params={
        "tenant_id": tenant.tenant_id, "plans": [{"user_plan_id": tenant.plan_id, "hard_limit": None}]})
    children = seeder.users(tenant, ["gus", "hal", "ivy"], parent_id=parent.id, reserve=False)
    publish([parent])  # only the parent: its success starts the users
    states = seeder.wait([parent.id] + [c.id for c in children], timeout=TIMEOUT)
    assert states == {kinds.SUCCEEDED: 4}, stack.logs()[-4000:]
    assert _created(emulator, tenant) == 3
    first_child_start = min(seeder.get(c.id).steps[0].started_at for c in children)
    assert first_child_start >= seeder.get(parent.id).finished_at


def test_deprovisioning_removes_licences_disables_and_releases_the_seat(seeder, emulator, stack):
    tenant = seeder.tenant(units=2)
    [ref] = seeder.users(tenant, ["jon"])
    _run(seeder, stack, [ref], {kinds.SUCCEEDED: 1})
    user_id = seeder.get(ref.id).user_id
    dep = seeder.request(kinds.USER_DEPROVISION, tenant, user_id=user_id, params={"user_plan_id": tenant.plan_id})
    _run(seeder, stack, [dep], {kinds.SUCCEEDED: 1})
    entra = _entra(emulator, tenant, f"jon@{tenant.domain}")
    assert entra["accountEnabled"] is False and entra["assignedLicenses"] == []
    with seeder.session() as s:
        assert s.scalars(select(SeatReservation.state).where(SeatReservation.user_id == user_id)).all() == ["released"]


def test_a_sync_request_runs_the_sync_on_the_sync_queue(seeder, emulator, stack):
    from shared.db.models import SyncRun, TenantConnection

    tenant = seeder.tenant()
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}",
                            json={"domains": [{"name": "new.example", "verified": True}]}).raise_for_status()
    ref = seeder.request(kinds.CUSTOMER_SYNC, tenant)
    _run(seeder, stack, [ref], {kinds.SUCCEEDED: 1})
    with seeder.session() as s:
        run = s.get(SyncRun, ref.id)
        assert run is not None and run.state == "succeeded" and run.trigger == "manual"
        conn = s.scalar(select(TenantConnection).where(TenantConnection.customer_id == tenant.customer_id))
        assert "new.example" in conn.verified_domains
