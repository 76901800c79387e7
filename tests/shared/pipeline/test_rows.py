"""The engine's own rows, written past the ORM flush: what is written, and what the session believes after."""
from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, update

from shared.db.models import ProvisioningRequest, RequestStep
from shared.db.types import utcnow
from shared.pipeline import rows
from shared.pipeline.rows import StepRow
from shared.requests import kinds

PR = ProvisioningRequest


def test_a_request_written_past_the_flush_is_clean_and_as_the_database_has_it(world, db):
    req = world.b.provision(world.user("rows@contoso.com"), world.plan)
    now = utcnow()
    req.state, req.context = kinds.WAITING, {"entra_id": "abc"}
    rows.write_request(db, req, now=now)
    # Nothing left for a flush to write, and the session does not count the request as modified.
    assert not inspect(req).modified and req not in db.dirty and req.updated_at == now
    fresh = db.execute(select(PR.__table__.c.state, PR.__table__.c.context, PR.__table__.c.updated_at)
                       .where(PR.id == req.id)).one()
    assert fresh == (kinds.WAITING, {"entra_id": "abc"}, now)


def test_a_leased_write_lands_only_under_its_lease(world, db):
    from shared.pipeline.claim import LeaseLost

    req = world.b.provision(world.user("leased@contoso.com"), world.plan)
    db.execute(update(PR).where(PR.id == req.id).values(state=kinds.RUNNING, lease_owner="ours"))
    db.refresh(req)  # loaded, as the engine holds it
    req.context = {"step": "one"}
    with pytest.raises(LeaseLost):
        rows.write_request(db, req, now=utcnow(), lease="theirs")
    with db.no_autoflush:  # (a flush would write the change itself)
        assert db.execute(select(PR.__table__.c.context).where(PR.id == req.id)).scalar() != {"step": "one"}
    assert rows.write_request(db, req, now=utcnow(), lease="ours")
    assert db.execute(select(PR.__table__.c.context).where(PR.id == req.id)).scalar() == {"step": "one"}


def test_an_unchanged_request_is_not_written(world, db):
    req = world.b.provision(world.user("same@contoso.com"), world.plan)
    db.commit()
    before = db.scalar(select(PR.updated_at).where(PR.id == req.id))
    rows.write_request(db, req, now=utcnow())
    assert db.execute(select(PR.__table__.c.updated_at).where(PR.id == req.id)).scalar() == before


def test_a_step_row_adds_each_attempts_time_and_writes_only_what_it_was_told(world, db):
    req = world.b.provision(world.user("steps@contoso.com"), world.plan)
    db.execute(update(RequestStep).where(RequestStep.request_id == req.id, RequestStep.name == "reserve_seat")
               .values(duration_ms=None, error_message="kept"))
    for ms in (120, 30):
        step = StepRow(req.id, "reserve_seat", attempts=1)
        step.add_duration(ms)
        step.set(state=kinds.STEP_PENDING, error_code="throttled")
        rows.write_step(db, step)
        assert step.changes == {} and step.elapsed_ms == 0  # written once, not again
    row = db.execute(select(RequestStep.__table__).where(RequestStep.request_id == req.id,
                                                         RequestStep.name == "reserve_seat")).one()
    assert (row.duration_ms, row.state, row.error_code, row.error_message) == (150, "pending", "throttled", "kept")
    other = db.execute(select(RequestStep.__table__.c.duration_ms).where(
        RequestStep.request_id == req.id, RequestStep.name == "ensure_user")).scalar()
    assert other is None


def test_a_step_row_refuses_a_column_it_does_not_own():
    step = StepRow("r", "reserve_seat", attempts=1)
    with pytest.raises(AttributeError, match="duration_ms"):
        step.set(duration_ms=5)  # summed by the database, never overwritten
    with pytest.raises(AttributeError, match="nonsense"):
        step.set(nonsense=1)


def _leased(db, world, upn):
    req = world.b.provision(world.user(upn), world.plan)
    db.execute(update(PR).where(PR.id == req.id).values(state=kinds.RUNNING, lease_owner="ours",
                                                       current_step="reserve_seat"))
    db.refresh(req)
    return req


def _step(db, req, name):
    return db.execute(select(RequestStep.__table__.c.state, RequestStep.__table__.c.attempts,
                             RequestStep.__table__.c.duration_ms, RequestStep.__table__.c.started_at)
                      .where(RequestStep.request_id == req.id, RequestStep.name == name)).one()


def _outcome(req, now):
    """What a Done run on does: the step finished, the request moved on under a new lease."""
    step = StepRow(req.id, "reserve_seat", 1)
    step.set(state=kinds.STEP_SUCCEEDED, finished_at=now)
    step.add_duration(40)
    req.current_step, req.lease_owner = "ensure_user", "next-lease"
    return step


def test_an_outcome_run_on_is_one_statement_for_the_request_its_step_and_the_next(world, db, raw_log):
    req = _leased(db, world, "one@contoso.com")
    now = utcnow()
    step = _outcome(req, now)
    raw_log.clear()
    attempts = rows.write_outcome(db, req, step, now=now, lease="ours", start="ensure_user")
    assert len(raw_log) == 1 and attempts == 1
    assert not inspect(req).modified and not step.changes and not step.elapsed_ms
    assert db.execute(select(PR.__table__.c.current_step, PR.__table__.c.lease_owner)
                      .where(PR.id == req.id)).one() == ("ensure_user", "next-lease")
    assert _step(db, req, "reserve_seat")[:3] == (kinds.STEP_SUCCEEDED, 0, 40)
    assert _step(db, req, "ensure_user")[:2] == (kinds.STEP_RUNNING, 1) and _step(db, req, "ensure_user")[3] == now


def test_an_outcome_under_a_lost_lease_writes_nothing(world, db):
    from shared.pipeline.claim import LeaseLost

    req = _leased(db, world, "two@contoso.com")
    now = utcnow()
    before = (_step(db, req, "reserve_seat"), _step(db, req, "ensure_user"))
    step = _outcome(req, now)
    with pytest.raises(LeaseLost):
        rows.write_outcome(db, req, step, now=now, lease="theirs", start="ensure_user")
    with db.no_autoflush:  # (a flush would write the request's change itself)
        assert (_step(db, req, "reserve_seat"), _step(db, req, "ensure_user")) == before
        assert db.execute(select(PR.__table__.c.current_step).where(PR.id == req.id)).scalar() == "reserve_seat"


def test_an_outcome_with_nothing_plain_on_the_request_is_written_one_row_at_a_time(world, db):
    from shared.pipeline.claim import LeaseLost

    req = _leased(db, world, "three@contoso.com")  # the request itself unchanged: the lease is SELECTed
    step = StepRow(req.id, "reserve_seat", 1)
    step.set(state=kinds.STEP_WAITING)
    assert rows.write_outcome(db, req, step, now=utcnow(), lease="ours", start="ensure_user") == 1
    assert _step(db, req, "reserve_seat")[0] == kinds.STEP_WAITING
    assert _step(db, req, "ensure_user")[:2] == (kinds.STEP_RUNNING, 1)
    with pytest.raises(LeaseLost):
        rows.write_outcome(db, req, StepRow(req.id, "ensure_user", 1), now=utcnow(), lease="theirs")


def test_a_step_s_changes_to_loaded_rows_are_written_plainly_and_leave_them_clean(world, db):
    from shared.db.models import User

    user = world.user("dirty@contoso.com")
    req = world.b.provision(user, world.plan)
    db.commit()
    now = utcnow()
    user.entra_id, user.licences = "entra-1", ["O365_BUSINESS_ESSENTIALS"]
    req.context = {"left": "to write_outcome"}
    rows.write_dirty(db, now=now)
    assert not inspect(user).modified and user.updated_at == now
    assert inspect(req).modified  # the request is written only under its lease
    with db.no_autoflush:
        assert db.execute(select(User.__table__.c.entra_id, User.__table__.c.licences, User.__table__.c.updated_at)
                          .where(User.id == user.id)).one() == ("entra-1", ["O365_BUSINESS_ESSENTIALS"], now)


def test_with_a_row_to_insert_the_flush_writes_everything_in_its_order(world, db):
    from shared.db.models import OutboxMessage

    user = world.user("pending@contoso.com")
    db.commit()
    user.entra_id = "entra-2"
    db.add(OutboxMessage(channel="webhook", topic="t", payload={}))
    rows.write_dirty(db, now=utcnow())
    assert inspect(user).modified  # left to the flush, which orders inserts and updates
