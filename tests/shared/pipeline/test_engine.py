"""The engine: claim and lease, dispatches, skip of done steps, poison messages, outcomes, retries, children."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from shared.db.models import OutboxMessage, ProvisioningRequest, SeatReservation, UserService
from shared.db.types import utcnow
from shared.microsoft.errors import Throttled, Transient
from shared.pipeline import registry
from shared.pipeline.engine import Engine
from shared.pipeline.outcomes import Done
from shared.requests import kinds
from shared.requests.service import resume_blocked
from shared.seats import ledger
from tests.shared.steps_support import run_link

PR = ProvisioningRequest


def drive(engine: Engine, req: PR, limit: int = 20) -> list[str]:
    """Run the chain in-process as a worker would: link after link while the verdict continues."""
    seen = []
    step = req.current_step
    names = kinds.steps_of(req.kind)
    while step and len(seen) < limit:
        verdict = run_link(engine, req.id, step)
        seen.append(f"{step}:{verdict.action}")
        if verdict.action != "continue":
            break
        i = names.index(step)
        step = names[i + 1] if i + 1 < len(names) else None
    return seen


def later(engine: Engine, seconds: float) -> Engine:
    """The same engine, its clock `seconds` ahead (a countdown has passed)."""
    return Engine(engine.microsoft, settings=engine.settings, session_factory=engine.session_factory,
                  clock=lambda: utcnow() + timedelta(seconds=seconds))


def reload(db, req: PR) -> PR:
    db.expire_all()
    return db.get(PR, req.id)


def test_a_user_is_provisioned_and_the_first_mailbox_probe_waits_for_a_countdown(world, engine, db):
    user = world.user("ada@contoso.com", aliases=["countess@contoso.com"])
    req = world.b.provision(user, world.plan)
    # assign_licences continues into wait_mailbox, whose link waits out the first delay as a retry.
    assert drive(engine, req)[-2:] == ["assign_licences:continue", "wait_mailbox:retry"]
    verdict = engine.run(req.id, "wait_mailbox")
    assert verdict.action == "retry" and verdict.reason == "not before"
    assert 0 < verdict.countdown <= world.settings.mailbox_first_delay_s
    req = reload(db, req)
    assert req.state == kinds.RUNNING and req.current_step == "wait_mailbox" and req.lease_until is None
    assert req.not_before is not None and req.next_attempt_at > req.not_before  # the reconciler's backstop
    assert world.ms.created == ["ada@contoso.com"]

    world.tenant.mailboxes.add(reload(db, req).context["entra_id"])
    soon = later(engine, world.settings.mailbox_first_delay_s + 1)
    assert drive(soon, req)[-1] == "notify:continue"
    req = reload(db, req)
    assert req.state == kinds.SUCCEEDED and req.finished_at is not None
    assert all(s.state in (kinds.STEP_SUCCEEDED, kinds.STEP_SKIPPED) for s in req.steps)
    assert all(s.attempts >= 1 and s.duration_ms is not None for s in req.steps)
    held = db.scalars(select(SeatReservation.state).where(SeatReservation.request_id == req.id)).all()
    assert held == [ledger.CONSUMED]
    assert db.scalar(select(UserService.temp_password_enc).where(UserService.user_id == user.id)) is None
    assert "request.state_changed" in db.scalars(select(OutboxMessage.topic)).all()


def test_a_wait_longer_than_a_safe_countdown_is_a_durable_timer(world, engine, db, settings):
    settings.mailbox_first_delay_s = settings.max_countdown_s * 5
    req = world.b.provision(world.user("grace@contoso.com"), world.plan)
    assert drive(engine, req)[-1] == "assign_licences:halt"
    row = reload(db, req)
    assert row.state == kinds.WAITING and row.current_step == "wait_mailbox" and row.not_before is None
    assert row.next_attempt_at > utcnow() + timedelta(seconds=settings.max_countdown_s * 4)
    assert engine.run(req.id, "wait_mailbox").action == "halt"  # an early copy cannot jump the timer


def test_a_second_delivery_of_a_done_step_stops_without_acting(world, engine, db):
    user = world.user("bob@contoso.com")
    req = world.b.provision(user, world.plan)
    assert engine.run(req.id, "reserve_seat", 1).action == "continue"
    assert engine.run(req.id, "buy_seats", 1).action == "continue"
    assert engine.run(req.id, "ensure_user", 1).action == "continue"
    calls = sum(world.ms.calls.values())
    verdict = engine.run(req.id, "ensure_user", 1)  # redelivered message
    # A stale copy halts: walking on would duplicate every later message of the chain.
    assert verdict.action == "halt" and verdict.reason == "step already done"
    assert sum(world.ms.calls.values()) == calls
    assert engine.run(req.id, "wait_mailbox", 1).action == "halt"  # ahead of the current step


def test_a_message_of_an_older_dispatch_stops_at_its_claim(world, engine, db):
    req = world.b.provision(world.user("old.copy@contoso.com"), world.plan)
    db.execute(update(PR).where(PR.id == req.id).values(dispatch=2))  # re-driven since
    verdict = engine.run(req.id, "reserve_seat", 1)
    assert (verdict.action, verdict.reason) == ("halt", "superseded")
    row = reload(db, req)
    assert (row.state, row.deliveries, row.steps[0].attempts) == (kinds.QUEUED, 0, 0)  # nothing claimed
    assert engine.run(req.id, "reserve_seat", 2).action == "continue"


def test_throttling_waits_as_long_as_microsoft_says_without_spending_the_retry_budget(world, engine, db, settings):
    user = world.user("eve@contoso.com")
    req = world.b.provision(user, world.plan)
    engine.run(req.id, "reserve_seat")
    engine.run(req.id, "buy_seats")
    world.ms.fail["find_user_by_upn"] = [Throttled("Graph 429", retry_after=7)] * (settings.max_step_retries + 3)
    verdict = engine.run(req.id, "ensure_user")
    assert verdict.action == "retry" and 7 <= verdict.countdown <= 8
    row = reload(db, req)
    step = next(s for s in row.steps if s.name == "ensure_user")
    assert step.state == kinds.STEP_PENDING and step.error_code == "throttled"
    assert step.microsoft_error["type"] == "Throttled"
    assert row.state == kinds.RUNNING and row.lease_until is None and row.retries == 0
    assert engine.run(req.id, "ensure_user").reason == "not before"  # an early copy waits too
    for i in range(1, settings.max_step_retries + 3):  # each run after the last one's Retry-After
        assert later(engine, 9 * i).run(req.id, "ensure_user").reason == "throttled"
    assert reload(db, req).state == kinds.RUNNING  # a busy tenant never fails a user
    assert later(engine, 9 * (settings.max_step_retries + 3)).run(req.id, "ensure_user").action == "continue"
    assert world.ms.created == ["eve@contoso.com"]


def test_transient_errors_spend_the_retry_budget_then_fail(world, engine, db, settings):
    req = world.b.provision(world.user("flo@contoso.com"), world.plan)
    engine.run(req.id, "reserve_seat")
    engine.run(req.id, "buy_seats")
    world.ms.fail["find_user_by_upn"] = [Transient("Graph 503", status=503)] * (settings.max_step_retries + 1)
    for i in range(1, settings.max_step_retries + 1):  # each run after the last one's backoff
        assert later(engine, (settings.max_countdown_s + 1) * i).run(req.id, "ensure_user").action == "retry"
    assert later(engine, (settings.max_countdown_s + 1) * 99).run(req.id, "ensure_user").action == "halt"
    row = reload(db, req)
    assert row.state == kinds.FAILED and row.error_code == "microsoft_unavailable"
    assert "ensure_user" in row.error_message


def test_a_retry_after_beyond_a_safe_countdown_becomes_a_durable_timer(world, engine, db, settings):
    user = world.user("fay@contoso.com")
    req = world.b.provision(user, world.plan)
    engine.run(req.id, "reserve_seat")
    engine.run(req.id, "buy_seats")
    world.ms.fail["find_user_by_upn"] = [Throttled("Graph 429", retry_after=settings.max_countdown_s * 3)]
    assert engine.run(req.id, "ensure_user").action == "halt"
    row = reload(db, req)
    assert row.state == kinds.WAITING
    assert row.next_attempt_at > utcnow() + timedelta(seconds=settings.max_countdown_s * 2)


class _Killed(BaseException):
    """What kill -9 looks like from inside: nothing after it runs."""


def test_a_delivery_that_died_mid_step_is_run_again_once_its_lease_ends(world, engine, ms, settings, maker, db,
                                                                        monkeypatch):
    req = world.b.provision(world.user("crash@contoso.com"), world.plan)
    engine.run(req.id, "reserve_seat")
    engine.run(req.id, "buy_seats")

    def killed(ctx):
        raise _Killed

    monkeypatch.setitem(registry.table(), "ensure_user", killed)
    with pytest.raises(_Killed):
        engine.run(req.id, "ensure_user")
    row = reload(db, req)
    assert row.state == kinds.RUNNING and row.current_step == "ensure_user" and row.lease_owner
    assert row.deliveries == 1 and row.lease_until > utcnow()
    monkeypatch.undo()
    assert engine.run(req.id, "ensure_user").action == "halt"  # the lease is still live
    assert later(engine, settings.lease_seconds + 1).run(req.id, "ensure_user").action == "continue"
    row = reload(db, req)
    assert row.deliveries == 0 and world.ms.created == ["crash@contoso.com"]
    assert next(s for s in row.steps if s.name == "ensure_user").attempts == 2


def test_an_unexpected_exception_fails_the_request_without_its_text(world, engine, db):
    user = world.user("gus@contoso.com")
    req = world.b.provision(user, world.plan)
    engine.run(req.id, "reserve_seat")
    engine.run(req.id, "buy_seats")
    world.ms.fail["find_user_by_upn"] = [RuntimeError("password=Secret123!")]
    assert engine.run(req.id, "ensure_user").action == "halt"
    row = reload(db, req)
    assert row.state == kinds.FAILED and row.error_code == "internal_error"
    assert "Secret123" not in row.error_message and "RuntimeError" in row.error_message
    assert db.scalars(select(SeatReservation.state).where(SeatReservation.request_id == req.id)).all() == ["released"]
    assert db.scalar(select(OutboxMessage).where(OutboxMessage.topic == "request.failed",
                                                 OutboxMessage.payload["request_id"].as_string() == req.id))


def test_an_outcome_is_dropped_when_the_lease_was_taken_over(world, engine, db, maker, monkeypatch):
    user = world.user("hal@contoso.com")
    req = world.b.provision(user, world.plan)

    def stolen(ctx):
        _steal(maker, req)
        return Done()

    monkeypatch.setitem(registry.table(), "reserve_seat", stolen)
    assert engine.run(req.id, "reserve_seat").reason == "lease lost"
    row = reload(db, req)  # (the thief's write shares our savepoint here, so only our side is checked)
    assert row.current_step == "reserve_seat" and row.steps[0].state == kinds.STEP_RUNNING


def _steal(maker, req):
    with maker() as s:  # another delivery took over after our lease expired
        s.execute(update(PR).where(PR.id == req.id).values(lease_owner="someone-else"))
        s.commit()


def test_a_last_step_whose_lease_was_taken_over_finishes_nothing(world, engine, db, maker, monkeypatch):
    user = world.user("ida@contoso.com")
    req = world.b.provision(user, world.plan)
    db.execute(update(PR).where(PR.id == req.id).values(current_step="notify"))
    notify = registry.table()["notify"]

    def stolen(ctx):
        _steal(maker, req)
        return notify(ctx)  # the outcome's own writes (the service state) must not land either

    monkeypatch.setitem(registry.table(), "notify", stolen)
    assert engine.run(req.id, "notify").reason == "lease lost"
    row = reload(db, req)  # (the thief's write shares our savepoint here, so only our side is checked)
    assert row.state == kinds.RUNNING and row.current_step == "notify"
    assert db.scalars(select(UserService.state).where(UserService.user_id == user.id)).all() != ["provisioned"]
    assert not db.scalar(select(OutboxMessage).where(OutboxMessage.payload["request_id"].as_string() == req.id))


def test_a_checkpoint_whose_lease_was_taken_over_stops_the_step_before_its_call(world, engine, db, maker,
                                                                               monkeypatch):
    user = world.user("jo@contoso.com")
    req = world.b.provision(user, world.plan)
    calls = []

    def stolen(ctx):
        _steal(maker, req)
        ctx.checkpoint(create_sent_at=ctx.now.isoformat())
        calls.append("create")  # never reached: the checkpoint found the lease gone
        return Done()

    monkeypatch.setitem(registry.table(), "reserve_seat", stolen)
    assert engine.run(req.id, "reserve_seat").reason == "lease lost"
    assert calls == [] and "create_sent_at" not in (reload(db, req).context or {})


def test_a_live_lease_keeps_a_second_delivery_out_and_an_expired_one_lets_it_in(world, engine, db):
    user = world.user("carol@contoso.com")
    req = world.b.provision(user, world.plan)
    db.execute(update(PR).where(PR.id == req.id).values(
        state=kinds.RUNNING, lease_owner="other", lease_until=utcnow() + timedelta(seconds=30)))
    assert engine.run(req.id, "reserve_seat").action == "halt"
    db.execute(update(PR).where(PR.id == req.id).values(lease_until=utcnow() - timedelta(seconds=1)))
    assert engine.run(req.id, "reserve_seat").action == "continue"


def test_a_step_delivered_too_often_without_an_outcome_fails_as_poison(world, engine, db, settings):
    user = world.user("dan@contoso.com")
    req = world.b.provision(user, world.plan)
    db.execute(update(PR).where(PR.id == req.id).values(deliveries=settings.max_deliveries))
    assert engine.run(req.id, "reserve_seat").action == "halt"
    req = reload(db, req)
    assert req.state == kinds.FAILED and req.error_code == "poison_message"
    assert req.steps[0].state == kinds.STEP_FAILED and req.steps[0].attempts == 0  # never started
    assert db.scalars(select(SeatReservation.state).where(SeatReservation.request_id == req.id)).all() == ["released"]


def test_children_wait_for_their_onboarding_parent_and_fail_with_it(world, engine, db, published):
    parent = world.b.request(kinds.CUSTOMER_ONBOARD, customer=world.customer, params={"tenant_id": "x"})
    child = world.b.provision(world.user("ivy@contoso.com"), world.plan, parent_id=parent.id, reserve=False)
    assert engine.run(child.id, "reserve_seat").reason == "parent not finished"
    row = reload(db, child)  # the gate undid the claim: not delivered, not started
    assert (row.state, row.deliveries, row.lease_owner, row.steps[0].attempts) == (kinds.QUEUED, 0, None, 0)
    db.execute(update(PR).where(PR.id == parent.id).values(state=kinds.SUCCEEDED))
    assert engine.run(child.id, "reserve_seat").action == "continue"

    parent2 = world.b.request(kinds.CUSTOMER_ONBOARD, customer=world.customer, params={"tenant_id": "x"})
    child2 = world.b.provision(world.user("jon@contoso.com"), world.plan, parent_id=parent2.id)
    world.ms.fail["get_customer"] = [RuntimeError("boom")]
    assert engine.run(parent2.id, "connect_tenant").action == "halt"
    row = reload(db, child2)
    assert row.state == kinds.FAILED and row.error_code == "parent_failed"


def test_a_succeeded_onboarding_parent_starts_its_children(world, engine, db, published):
    parent = world.b.request(kinds.CUSTOMER_ONBOARD, customer=world.customer,
                             params={"tenant_id": world.tenant.tenant_id,
                                     "plans": [{"user_plan_id": world.plan.id, "hard_limit": None}]})
    child = world.b.provision(world.user("kim@contoso.com"), world.plan, parent_id=parent.id, reserve=False)
    assert drive(engine, parent)[-1] == "notify:continue"
    assert [(r.id, r.dispatch) for r in published] == [(child.id, 2)]  # a new dispatch: the gated one halted
    assert engine.run(child.id, "reserve_seat", 1).reason == "superseded"
    assert drive(engine, reload(db, child))[-1] == "wait_mailbox:retry"


def test_mca_blocks_plans_and_recording_it_resumes_the_request(world, engine, db):
    world.tenant.mca.clear()
    req = world.b.request(kinds.CUSTOMER_MICROSOFT_ONLINE, customer=world.customer,
                          params={"plans": [{"user_plan_id": world.plan.id, "hard_limit": 2}]})
    assert engine.run(req.id, "check_mca").action == "halt"
    row = reload(db, req)
    assert row.state == kinds.BLOCKED and row.blocked_reason == "mca_not_signed"
    world.tenant.mca.append({"type": "MicrosoftCustomerAgreement", "dateAgreed": "2025-02-01"})
    refs = resume_blocked(db, customer_id=world.customer.id, reason="mca_not_signed")
    db.flush()
    assert [r.from_step for r in refs] == ["check_mca"]
    assert drive(engine, reload(db, req))[-1] == "notify:continue"
    assert reload(db, req).state == kinds.SUCCEEDED
