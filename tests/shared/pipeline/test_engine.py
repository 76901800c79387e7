"""The engine: claim and lease, skip of done steps, poison messages, outcomes, retries, children."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from shared.db.models import OutboxMessage, ProvisioningRequest, SeatReservation, UserService
from shared.db.types import utcnow
from shared.microsoft.errors import Throttled
from shared.pipeline import registry
from shared.pipeline.engine import Engine
from shared.pipeline.outcomes import Done
from shared.requests import kinds
from shared.requests.service import resume_blocked
from shared.seats import ledger

PR = ProvisioningRequest


def drive(engine: Engine, req: PR, limit: int = 20) -> list[str]:
    """Run the chain in-process the way the worker would: step after step while the verdict continues."""
    seen = []
    step = req.current_step
    names = kinds.steps_of(req.kind)
    while step and len(seen) < limit:
        verdict = engine.run(req.id, step)
        seen.append(f"{step}:{verdict.action}")
        if verdict.action != "continue":
            break
        i = names.index(step)
        step = names[i + 1] if i + 1 < len(names) else None
    return seen


def reload(db, req: PR) -> PR:
    db.expire_all()
    return db.get(PR, req.id)


def test_a_user_is_provisioned_and_mailbox_waits_as_a_durable_timer(world, engine, db):
    user = world.user("ada@contoso.com", aliases=["countess@contoso.com"])
    req = world.b.provision(user, world.plan)
    assert drive(engine, req)[-1] == "assign_licences:halt"  # the first probe waits for the first delay
    req = reload(db, req)
    assert req.state == kinds.WAITING and req.current_step == "wait_mailbox"
    assert req.next_attempt_at is not None and req.next_attempt_at > utcnow()
    assert req.lease_until is None
    assert world.ms.created == ["ada@contoso.com"]

    world.tenant.mailboxes.add(user.entra_id or reload(db, req).context["entra_id"])
    db.execute(update(PR).where(PR.id == req.id).values(state=kinds.QUEUED))  # what the reconciler does when due
    assert drive(engine, req)[-1] == "notify:continue"
    req = reload(db, req)
    assert req.state == kinds.SUCCEEDED and req.finished_at is not None
    assert all(s.state in (kinds.STEP_SUCCEEDED, kinds.STEP_SKIPPED) for s in req.steps)
    assert all(s.attempts >= 1 and s.duration_ms is not None for s in req.steps)
    held = db.scalars(select(SeatReservation.state).where(SeatReservation.request_id == req.id)).all()
    assert held == [ledger.CONSUMED]
    assert db.scalar(select(UserService.temp_password_enc).where(UserService.user_id == user.id)) is None
    topics = db.scalars(select(OutboxMessage.topic)).all()
    assert "request.state_changed" in topics


def test_a_second_delivery_of_a_done_step_stops_without_acting(world, engine, db):
    user = world.user("bob@contoso.com")
    req = world.b.provision(user, world.plan)
    assert engine.run(req.id, "reserve_seat").action == "continue"
    assert engine.run(req.id, "ensure_user").action == "continue"
    calls = sum(world.ms.calls.values())
    verdict = engine.run(req.id, "ensure_user")  # redelivered message
    # A stale copy halts: walking on would duplicate every later message of the chain.
    assert verdict.action == "halt" and verdict.reason == "step already done"
    assert sum(world.ms.calls.values()) == calls
    assert engine.run(req.id, "wait_mailbox").action == "halt"  # ahead of the current step


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


def test_throttling_retries_soon_honouring_retry_after_then_gives_up(world, engine, db, settings):
    user = world.user("eve@contoso.com")
    req = world.b.provision(user, world.plan)
    engine.run(req.id, "reserve_seat")
    world.ms.fail["find_user_by_upn"] = [Throttled("Graph 429", retry_after=7)] * (settings.max_step_retries + 1)
    verdict = engine.run(req.id, "ensure_user")
    assert verdict.action == "retry" and 7 <= verdict.countdown <= 8
    row = reload(db, req)
    step = next(s for s in row.steps if s.name == "ensure_user")
    assert step.state == kinds.STEP_PENDING and step.error_code == "throttled"
    assert step.microsoft_error["type"] == "Throttled"
    assert row.state == kinds.RUNNING and row.lease_until is None and row.retries == 1
    for _ in range(settings.max_step_retries):
        verdict = engine.run(req.id, "ensure_user")
    row = reload(db, req)
    assert row.state == kinds.FAILED and row.error_code == "throttled"
    assert "ensure_user" in row.error_message


def test_a_retry_after_beyond_a_safe_countdown_becomes_a_durable_timer(world, engine, db, settings):
    user = world.user("fay@contoso.com")
    req = world.b.provision(user, world.plan)
    engine.run(req.id, "reserve_seat")
    world.ms.fail["find_user_by_upn"] = [Throttled("Graph 429", retry_after=settings.max_countdown_s * 3)]
    assert engine.run(req.id, "ensure_user").action == "halt"
    row = reload(db, req)
    assert row.state == kinds.WAITING
    assert row.next_attempt_at > utcnow() + timedelta(seconds=settings.max_countdown_s * 2)


def test_an_unexpected_exception_fails_the_request_without_its_text(world, engine, db):
    user = world.user("gus@contoso.com")
    req = world.b.provision(user, world.plan)
    engine.run(req.id, "reserve_seat")
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


def test_the_claimed_request_is_adopted_as_a_load_of_the_row_would_be(world, settings, db):
    from sqlalchemy import inspect

    from shared.pipeline.claim import adopt, try_claim

    req = world.b.provision(world.user("adopt@contoso.com"), world.plan, params={"note": {"nested": [1, 2]}})
    rid = req.id
    db.expunge_all()
    claim = try_claim(db, rid, "reserve_seat", now=utcnow(), lease_seconds=60, max_deliveries=3)
    assert claim is not None and claim.attempts == 1 and claim.deliveries == 1
    adopted = adopt(db, claim)
    assert adopted is not None and db.get(PR, rid) is adopted
    assert not inspect(adopted).modified and "steps" in inspect(adopted).unloaded
    loaded = db.execute(select(PR.__table__).where(PR.id == rid)).one()._asdict()
    assert {k: getattr(adopted, k) for k in loaded} == loaded
    assert adopted.lease_owner == claim.token and adopted.params["note"] == {"nested": [1, 2]}
    assert adopt(db, claim) is None  # the session holds it already


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


def test_an_outcome_checks_its_lease_in_the_update_that_writes_it(world, settings, maker, ms, db, raw_log):
    from shared.pipeline import claim

    engine = Engine(ms, settings=settings, session_factory=maker, run_on=8, run_on_budget_s=60)
    req = world.b.provision(world.user("kim@contoso.com"), world.plan)
    verdict = engine.run(req.id, "reserve_seat")
    assert verdict.ran == ("reserve_seat", "ensure_user", "assign_licences")
    # No locking SELECT beside the UPDATE, the checkpoint's included.
    assert claim._lease_stmt() not in [stmt for stmt, _ in raw_log]
    assert reload(db, req).state == kinds.WAITING


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
    assert [r.id for r in published] == [child.id]
    assert drive(engine, reload(db, child))[-1] == "assign_licences:halt"


def test_run_on_runs_the_following_steps_in_one_call_until_one_does_not_continue(world, ms, settings, maker, db):
    engine = Engine(ms, settings=settings, session_factory=maker, run_on=8, run_on_budget_s=60)
    user = world.user("run.on@contoso.com")
    req = world.b.provision(user, world.plan)
    verdict = engine.run(req.id, "reserve_seat")
    # assign_licences continues into a mailbox timer: the request waits there, not in a message.
    assert verdict.action == "halt" and verdict.reason == "next step waits"
    assert verdict.ran == ("reserve_seat", "ensure_user", "assign_licences") and verdict.step == "assign_licences"
    row = reload(db, req)
    assert row.state == kinds.WAITING and row.current_step == "wait_mailbox"
    assert [s.attempts for s in row.steps[:3]] == [1, 1, 1]  # each step claimed and recorded on its own
    assert world.ms.created == ["run.on@contoso.com"]


def test_run_on_stops_at_its_step_limit_and_a_retry_names_the_step_it_is_about(world, ms, settings, maker, db):
    two = Engine(ms, settings=settings, session_factory=maker, run_on=2, run_on_budget_s=60)
    user = world.user("limit@contoso.com")
    req = world.b.provision(user, world.plan)
    verdict = two.run(req.id, "reserve_seat")
    assert verdict.action == "continue" and verdict.ran == ("reserve_seat", "ensure_user")
    assert verdict.step == "ensure_user" and reload(db, req).current_step == "assign_licences"

    other = world.b.provision(world.user("retry@contoso.com"), world.plan)
    world.ms.fail["find_user_by_upn"] = [Throttled("Graph 429", retry_after=3)]
    verdict = Engine(ms, settings=settings, session_factory=maker, run_on=8, run_on_budget_s=60).run(
        other.id, "reserve_seat")
    # The worker retries ensure_user, not the message's own step (already done: it would only halt).
    assert verdict.action == "retry" and verdict.step == "ensure_user"
    assert verdict.ran == ("reserve_seat", "ensure_user")


def test_a_spent_run_on_budget_stops_after_the_messages_own_step(world, ms, settings, maker):
    spent = Engine(ms, settings=settings, session_factory=maker, run_on=8, run_on_budget_s=0)
    user = world.user("budget@contoso.com")
    req = world.b.provision(user, world.plan)
    verdict = spent.run(req.id, "reserve_seat")
    assert verdict.action == "continue" and verdict.ran == ("reserve_seat",) and verdict.step == "reserve_seat"


class _Killed(BaseException):
    """What kill -9 looks like from inside: nothing after it runs."""


def test_run_on_takes_the_next_lease_with_the_outcome_so_a_crash_between_steps_is_a_lost_delivery(
        world, ms, settings, maker, db, monkeypatch):
    engine = Engine(ms, settings=settings, session_factory=maker, run_on=8, run_on_budget_s=60)
    user = world.user("crash@contoso.com")
    req = world.b.provision(user, world.plan)

    def killed(ctx):
        raise _Killed

    monkeypatch.setitem(registry.table(), "ensure_user", killed)
    with pytest.raises(_Killed):
        engine.run(req.id, "reserve_seat")
    row = reload(db, req)
    # reserve_seat's outcome and ensure_user's claim were one commit: leased, one delivery, one attempt.
    assert row.state == kinds.RUNNING and row.current_step == "ensure_user" and row.lease_owner
    assert row.deliveries == 1 and row.lease_until > utcnow()
    steps = {s.name: s for s in row.steps}
    assert steps["reserve_seat"].state == kinds.STEP_SUCCEEDED
    assert steps["ensure_user"].state == kinds.STEP_RUNNING and steps["ensure_user"].attempts == 1
    monkeypatch.undo()
    later = Engine(ms, settings=settings, session_factory=maker,
                   clock=lambda: utcnow() + timedelta(seconds=settings.lease_seconds + 1))
    assert later.run(req.id, "ensure_user").action == "continue"  # re-driven after the lease, as a suspect
    assert reload(db, req).deliveries == 0 and world.ms.created == ["crash@contoso.com"]


def test_a_message_never_selects_its_request_however_many_steps_it_runs_on(world, ms, settings, maker, db):
    engine = Engine(ms, settings=settings, session_factory=maker, run_on=8, run_on_budget_s=60)
    req = world.b.provision(world.user("once@contoso.com"), world.plan)
    loads: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if statement.startswith("SELECT provisioning_requests.kind"):
            loads.append(statement)

    event.listen(db.get_bind().engine, "before_cursor_execute", count)
    try:
        verdict = engine.run(req.id, "reserve_seat")
    finally:
        event.remove(db.get_bind().engine, "before_cursor_execute", count)
    assert verdict.ran == ("reserve_seat", "ensure_user", "assign_licences")
    # None at all: the claim's own UPDATE returned the row, and the run-on steps use the copy their
    # lease protects.
    assert loads == []
    row = reload(db, req)
    assert row.state == kinds.WAITING and row.attempts == 3 and row.context["entra_id"]


def test_a_step_run_on_sees_other_rows_as_they_are_now_not_as_an_earlier_step_loaded_them(
        world, ms, settings, maker, db, monkeypatch):
    from shared.db.models import User
    from shared.users.subject import user_of

    engine = Engine(ms, settings=settings, session_factory=maker, run_on=8, run_on_budget_s=60)
    user = world.user("moved@contoso.com")
    req = world.b.provision(user, world.plan)
    held = []
    reserve_seat, ensure_user = registry.table()["reserve_seat"], registry.table()["ensure_user"]

    def reserve_and_hold(ctx):
        held.append(user_of(ctx))  # still referenced, so still in the message's session
        return reserve_seat(ctx)

    def changed_meanwhile(ctx):
        ctx.session.execute(update(User.__table__).where(User.__table__.c.id == user.id).values(usage_location=None))
        return ensure_user(ctx)

    monkeypatch.setitem(registry.table(), "reserve_seat", reserve_and_hold)
    monkeypatch.setitem(registry.table(), "ensure_user", changed_meanwhile)
    verdict = engine.run(req.id, "reserve_seat")
    assert verdict.ran == ("reserve_seat", "ensure_user") and verdict.action == "halt"
    assert reload(db, req).error_code == "usage_location_missing"
    assert world.ms.created == []
