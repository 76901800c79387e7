"""reserve_seat and assign/remove licences: free seats only, once, hard limit, usage location."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.db.models import SeatReservation, TenantSku
from shared.pipeline.outcomes import StepFailed
from shared.users.entra import ensure_user
from shared.users.licensing import assign_licences, remove_licences
from shared.users.seats import reserve_seat
from tests.builders import Licence


def _linked(world, upn, **kw):
    user = world.user(upn, **kw)
    req = world.b.provision(user, world.plan)
    ensure_user(world.ctx(req, "ensure_user"))
    return user, req


def test_licences_are_assigned_once_and_the_seat_consumed(world, db):
    user, req = _linked(world, "ann@contoso.com")
    assign_licences(world.ctx(req, "assign_licences"))
    ctx = world.ctx(req, "assign_licences")
    ctx.step.attempts = 2  # a retry: what the user has is read again, not taken from ensure_user
    assign_licences(ctx)  # a repeat assigns nothing
    assert world.ms.assigned == [(user.entra_id, world.fake_sku.sku_id)]
    assert world.ms.calls["assign_licences"] == 1
    assert db.scalars(select(SeatReservation.state).where(SeatReservation.request_id == req.id)).all() == ["consumed"]
    assert req.context["mailbox_expected"] is True
    assert user.licences == ["O365_BUSINESS_ESSENTIALS"]


def test_no_free_seat_fails_the_request(world):
    world.fake_sku.consumed = world.fake_sku.units
    _user, req = _linked(world, "bo@contoso.com")
    with pytest.raises(StepFailed) as failed:
        assign_licences(world.ctx(req, "assign_licences"))
    assert failed.value.code == "no_free_licences" and world.ms.assigned == []


def test_a_disabled_exchange_plan_means_no_mailbox_to_wait_for(world):
    plan = world.b.user_plan([Licence("O365_BUSINESS_ESSENTIALS", ("EXCHANGE_S_STANDARD",))], world.provider)
    user = world.user("cid@contoso.com")
    req = world.b.provision(user, plan)
    ensure_user(world.ctx(req, "ensure_user"))
    assign_licences(world.ctx(req, "assign_licences"))
    assert req.context["mailbox_expected"] is False
    assert world.tenant.users[user.entra_id]["assignedLicenses"][0]["disabledPlans"] == [
        "9aaf7827-d63c-4b61-89c3-182f06f82e5c"]


def test_removing_licences_frees_the_seat(world, db):
    user, req = _linked(world, "dot@contoso.com")
    assign_licences(world.ctx(req, "assign_licences"))
    dep = world.b.request("user.deprovision", customer=world.customer, user=user,
                          params={"user_plan_id": world.plan.id})
    remove_licences(world.ctx(dep, "remove_licences"))
    assert world.fake_sku.consumed == 0 and user.licences == []


def test_reserve_seat_holds_a_seat_for_users_accepted_without_one(world, db):
    user = world.user("eda@contoso.com")
    req = world.b.provision(user, world.plan, reserve=False)
    reserve_seat(world.ctx(req, "reserve_seat"))
    assert db.scalars(select(SeatReservation.state).where(SeatReservation.request_id == req.id)).all() == ["held"]


def test_reserve_seat_refuses_when_every_seat_is_taken_or_held(world, db):
    db.execute(TenantSku.__table__.update().where(TenantSku.customer_id == world.customer.id).values(consumed=3))
    req = world.b.provision(world.user("fin@contoso.com"), world.plan, reserve=False)
    with pytest.raises(StepFailed) as failed:
        reserve_seat(world.ctx(req, "reserve_seat"))
    assert failed.value.code == "no_free_licences"


def test_the_hard_limit_bounds_what_a_customer_provisions_itself(world, db):
    from shared.db.models import PlanEnablement

    db.execute(PlanEnablement.__table__.update().where(PlanEnablement.customer_id == world.customer.id)
               .values(hard_limit=1))
    key = world.b.api_key("customer", world.customer.id)
    first = world.b.provision(world.user("gil@contoso.com"), world.plan, created_by=key.id)
    reserve_seat(world.ctx(first, "reserve_seat"))
    first.steps[0].state = "succeeded"  # what the engine records
    db.flush()
    second = world.b.provision(world.user("hal@contoso.com"), world.plan, created_by=key.id)
    with pytest.raises(StepFailed) as failed:
        reserve_seat(world.ctx(second, "reserve_seat"))
    assert failed.value.code == "plan_limit_reached"
    operator = world.b.provision(world.user("ian@contoso.com"), world.plan)  # the reseller is not bounded
    reserve_seat(world.ctx(operator, "reserve_seat"))


def test_a_plan_not_enabled_for_the_customer_is_refused(world):
    other = world.b.user_plan([Licence("O365_BUSINESS_ESSENTIALS")], world.provider)
    req = world.b.provision(world.user("jo@contoso.com"), other, reserve=False)
    with pytest.raises(StepFailed) as failed:
        reserve_seat(world.ctx(req, "reserve_seat"))
    assert failed.value.code == "plan_not_enabled"


def test_a_user_created_by_this_request_is_licensed_without_reading_it_back(world):
    user = world.user("eve@contoso.com")  # no Entra user yet: ensure_user creates it
    req = world.b.provision(user, world.plan)
    ensure_user(world.ctx(req, "ensure_user"))
    assert world.ms.created == ["eve@contoso.com"] and req.context["entra_licences"] == []
    world.ms.calls.clear()
    assign_licences(world.ctx(req, "assign_licences"))
    # One Microsoft call against the tenant's budget, not two: a user just created holds no licence.
    assert world.ms.calls["get_user"] == 0 and world.ms.calls["assign_licences"] == 1
    assert world.ms.assigned == [(user.entra_id, world.fake_sku.sku_id)]


def test_a_step_reads_its_user_and_the_user_s_service_in_one_statement(world, db):
    from sqlalchemy import event

    from shared.users import subject

    user = world.user("one.read@contoso.com")
    req = world.b.provision(user, world.plan)
    db.expire_all()  # as the engine leaves rows an earlier step loaded
    ctx = world.ctx(req, "reserve_seat")
    _ = ctx.request.user_id  # (the request itself is the engine's, loaded)
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.get_bind().engine, "before_cursor_execute", count)
    try:
        found = subject.user_of(ctx)
        service = subject.service_of(ctx, found)
        assert subject.user_of(ctx) is found and subject.service_of(ctx, found) is service
    finally:
        event.remove(db.get_bind().engine, "before_cursor_execute", count)
    assert len(statements) == 1 and found.id == user.id
    assert service is not None and service.user_plan_id == world.plan.id
    # The next step reads both again.
    db.expire_all()
    next_step = world.ctx(req, "assign_licences")
    assert subject.service_of(next_step, subject.user_of(next_step)).user_id == user.id


# -- re-provisioning, deprovisioning, missing seats (issue 15 items 3 and 5) --------------------------------
def _premium(world):
    """A second SKU in the tenant and a plan granting it: a plan change from world.plan to it."""
    from shared.db.models import PlanEnablement
    from tests.shared.fakes import FakeSku

    sku = FakeSku("O365_BUSINESS_PREMIUM", units=3)
    world.tenant.skus[sku.part] = sku
    world.db.add(TenantSku(customer_id=world.customer.id, sku_id=sku.sku_id, sku_part_number=sku.part, total=3,
                           consumed=0, service_plans=["EXCHANGE_S_STANDARD"]))
    plan = world.b.user_plan([Licence(sku.part)], world.provider)
    world.db.add(PlanEnablement(customer_id=world.customer.id, user_plan_id=plan.id, enabled=True))
    world.db.flush()
    return sku, plan


def test_a_plan_change_swaps_the_licences_in_one_call(world, db):
    user, req = _linked(world, "plan.change@contoso.com")
    assign_licences(world.ctx(req, "assign_licences"))
    premium, new_plan = _premium(world)
    change = world.b.provision(user, new_plan, params={"previous_user_plan_id": world.plan.id})
    ensure_user(world.ctx(change, "ensure_user"))
    world.ms.calls.clear()
    outcome = assign_licences(world.ctx(change, "assign_licences"))
    assert world.ms.calls["assign_licences"] == 1  # added and removed together
    held = [lic["skuId"] for lic in world.tenant.users[user.entra_id]["assignedLicenses"]]
    assert held == [premium.sku_id] and world.fake_sku.consumed == 0 and premium.consumed == 1
    assert user.licences == ["O365_BUSINESS_PREMIUM"] and "removed O365_BUSINESS_ESSENTIALS" in outcome.note
    states = dict(db.execute(select(SeatReservation.request_id, SeatReservation.state).where(
        SeatReservation.user_id == user.id)).all())
    assert states == {req.id: "released", change.id: "consumed"}


def test_deprovisioning_removes_every_licence_the_engine_assigned(world, db):
    user, req = _linked(world, "every.licence@contoso.com")
    assign_licences(world.ctx(req, "assign_licences"))  # the engine assigned Business Basic
    premium, other_plan = _premium(world)
    world.ms.graph(None, world.tenant.tenant_id).assign_licences(  # an admin added another licence by hand
        user.entra_id, add=[{"skuId": premium.sku_id, "disabledPlans": []}], remove=[])
    from shared.db.models import UserService

    # The user's service names another plan now (say a plan change whose request failed before licensing).
    db.query(UserService).filter_by(user_id=user.id).one().user_plan_id = other_plan.id
    dep = world.b.request("user.deprovision", customer=world.customer, user=user)
    remove_licences(world.ctx(dep, "remove_licences"))
    assert world.tenant.users[user.entra_id]["assignedLicenses"] == []
    assert world.fake_sku.consumed == 0 and premium.consumed == 0


def test_a_missing_seat_names_the_user_this_request_created(world):
    user = world.user("no.seat@contoso.com")
    req = world.b.provision(user, world.plan)
    ensure_user(world.ctx(req, "ensure_user"))  # created
    world.fake_sku.consumed = world.fake_sku.units  # the last seat went elsewhere meanwhile
    with pytest.raises(StepFailed) as failed:
        assign_licences(world.ctx(req, "assign_licences"))
    assert failed.value.code == "no_free_licences"
    assert "no.seat@contoso.com" in failed.value.message and user.entra_id in failed.value.message
    assert "created" in failed.value.message


def test_every_exchange_plan_that_gives_a_mailbox_is_expected_to(world):
    from shared.plans.skus import grants_mailbox

    for name, plan_id in (("EXCHANGE_S_STANDARD", "9aaf7827-d63c-4b61-89c3-182f06f82e5c"),
                          ("EXCHANGE_S_ENTERPRISE", "efb87545-963c-4e0d-99df-69c6916d9eb0"),
                          ("EXCHANGE_S_DESKLESS", "4a82b400-a79f-41a4-b4e2-e94f5787b113"),
                          ("EXCHANGE_S_ESSENTIALS", "1126bef5-da20-4f07-b45e-ad25d2581aa8")):
        assert grants_mailbox({"servicePlans": [{"servicePlanId": plan_id, "servicePlanName": name}]}, []), name
        assert grants_mailbox({"servicePlans": [{"servicePlanName": name}]}, []), name  # TenantSku rows: names
    foundation = {"servicePlans": [{"servicePlanId": "113feb6c-3fe4-4440-bddc-54d774bf0318",
                                    "servicePlanName": "EXCHANGE_S_FOUNDATION"}]}
    assert not grants_mailbox(foundation, [])


# -- who may disable or delete (issue 18 item 1) -----------------------------------------------------------
def _deprovision(world, user, role=None, **params):
    key = world.b.api_key(role, world.customer.id if role == "customer" else world.provider.id) if role else None
    dep = world.b.request("user.deprovision", customer=world.customer, user=user, params=params)
    if key is not None:
        dep.created_by = key.id
    return dep


def test_a_customer_key_may_not_disable_an_account_the_engine_did_not_create(world):
    from shared.users.steps import disable_or_delete

    existing = world.ms.add_user(world.tenant, "adopted@contoso.com", usageLocation="GB")
    user = world.user("adopted@contoso.com")
    ensure_user(world.ctx(world.b.provision(user, world.plan), "ensure_user"))  # an operator adopted it
    assert user.entra_origin == "adopted"
    dep = _deprovision(world, user, "customer")
    with pytest.raises(StepFailed) as failed:
        remove_licences(world.ctx(dep, "remove_licences"))
    assert failed.value.code == "adoption_requires_reseller"
    with pytest.raises(StepFailed):
        disable_or_delete(world.ctx(dep, "disable_or_delete"))
    assert existing["accountEnabled"] is True
    by_reseller = _deprovision(world, user, "service-provider", delete_user=False)
    disable_or_delete(world.ctx(by_reseller, "disable_or_delete"))
    assert existing["accountEnabled"] is False


def test_a_customer_key_may_delete_an_account_the_engine_created(world):
    from shared.users.steps import disable_or_delete

    user, _req = _linked(world, "ours@contoso.com")
    entra_id = user.entra_id
    dep = _deprovision(world, user, "customer", delete_user=True)
    disable_or_delete(world.ctx(dep, "disable_or_delete"))
    assert entra_id not in world.tenant.users and user.entra_id is None


def test_an_account_given_a_directory_role_is_never_disabled_or_deleted(world):
    from shared.users.steps import disable_or_delete

    user, _req = _linked(world, "later.admin@contoso.com")
    world.tenant.roles[user.entra_id] = ["User Administrator"]  # an admin made it one since
    dep = _deprovision(world, user, delete_user=True)
    with pytest.raises(StepFailed) as failed:
        disable_or_delete(world.ctx(dep, "disable_or_delete"))
    assert failed.value.code == "privileged_account" and user.entra_id in world.tenant.users


def test_nothing_is_changed_on_an_account_linked_by_another_name(world):
    from shared.users.steps import disable_or_delete

    stranger = world.ms.add_user(world.tenant, "vic@contoso.onmicrosoft.com", usageLocation="GB")
    user = world.user("vic@later.example")
    user.entra_id, user.entra_upn, user.entra_origin = stranger["id"], "vic@contoso.onmicrosoft.com", "synced"
    dep = _deprovision(world, user, delete_user=True)
    with pytest.raises(StepFailed) as failed:
        disable_or_delete(world.ctx(dep, "disable_or_delete"))
    assert failed.value.code == "upn_conflict" and stranger["id"] in world.tenant.users
