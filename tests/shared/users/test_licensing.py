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
