"""The reconciler: due timers, expired leases, lost messages, onboarding children, no double re-drive."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest
from shared.db.types import utcnow
from shared.pipeline.reconcile import reconcile
from shared.requests import kinds
from tests.builders import Builder, Licence

PR = ProvisioningRequest


@pytest.fixture(autouse=True)
def _only_this_tests_requests(db: Session) -> None:
    # The reconciler scans the whole table, and the session database holds requests other suites
    # committed. Park them inside this test's transaction (rolled back afterwards) so each assertion
    # sees exactly the requests the test made.
    db.execute(update(PR).where(PR.state.in_(list(kinds.ACTIVE_STATES))).values(state=kinds.CANCELLED))



def _set(db: Session, req: PR, **values) -> None:
    db.execute(update(PR).where(PR.id == req.id).values(**values))
    db.expire_all()


def test_due_waiting_requests_are_requeued_and_not_due_ones_left(world, db, settings):
    now = utcnow()
    due = world.b.provision(world.user("a@contoso.com"), world.plan)
    later = world.b.provision(world.user("b@contoso.com"), world.plan)
    _set(db, due, state=kinds.WAITING, current_step="wait_mailbox", next_attempt_at=now - timedelta(seconds=1))
    _set(db, later, state=kinds.WAITING, current_step="wait_mailbox", next_attempt_at=now + timedelta(seconds=60))
    refs = reconcile(db, now=now, settings=settings)
    assert [(r.id, r.from_step) for r in refs] == [(due.id, "wait_mailbox")]
    assert db.get(PR, due.id).state == kinds.QUEUED
    assert db.get(PR, due.id).next_attempt_at == now + timedelta(seconds=settings.redrive_after_s)
    assert db.get(PR, later.id).state == kinds.WAITING
    assert reconcile(db, now=now, settings=settings) == []  # not doubled on the next tick


def test_running_requests_with_an_expired_lease_are_redriven(world, db, settings):
    now = utcnow()
    dead = world.b.provision(world.user("c@contoso.com"), world.plan)
    alive = world.b.provision(world.user("d@contoso.com"), world.plan)
    _set(db, dead, state=kinds.RUNNING, current_step="ensure_user", lease_owner="w1",
         lease_until=now - timedelta(seconds=1), next_attempt_at=now - timedelta(seconds=1))
    _set(db, alive, state=kinds.RUNNING, current_step="ensure_user", lease_owner="w2",
         lease_until=now + timedelta(seconds=30), next_attempt_at=now + timedelta(seconds=30))
    refs = reconcile(db, now=now, settings=settings)
    assert [(r.id, r.from_step) for r in refs] == [(dead.id, "ensure_user")]
    assert db.get(PR, dead.id).lease_owner is None


def test_queued_requests_whose_message_was_lost_are_redriven_after_a_while(world, db, settings):
    now = utcnow()
    lost = world.b.provision(world.user("e@contoso.com"), world.plan)
    fresh = world.b.provision(world.user("f@contoso.com"), world.plan)
    _set(db, lost, updated_at=now - timedelta(seconds=settings.redrive_after_s + 1))
    assert [r.id for r in reconcile(db, now=now, settings=settings)] == [lost.id]
    assert fresh.id not in [r.id for r in reconcile(db, now=now, settings=settings)]


def test_children_start_after_their_parent_succeeded_and_fail_after_it_failed(world, db, settings):
    now = utcnow()
    parent = world.b.request(kinds.CUSTOMER_ONBOARD, customer=world.customer)
    child = world.b.provision(world.user("g@contoso.com"), world.plan, parent_id=parent.id, reserve=False)
    _set(db, child, next_attempt_at=now - timedelta(seconds=1))
    assert reconcile(db, now=now, settings=settings) == []  # parent still running
    _set(db, parent, state=kinds.SUCCEEDED)
    assert [r.id for r in reconcile(db, now=now, settings=settings)] == [child.id]

    parent2 = world.b.request(kinds.CUSTOMER_ONBOARD, customer=world.customer)
    child2 = world.b.provision(world.user("h@contoso.com"), world.plan, parent_id=parent2.id)
    _set(db, parent2, state=kinds.FAILED)
    reconcile(db, now=now, settings=settings)
    assert db.get(PR, child2.id).state == kinds.FAILED
    assert db.get(PR, child2.id).error_code == "parent_failed"


def test_two_reconcilers_at_once_never_take_the_same_request(pg_engine, settings):
    """Real connections: FOR UPDATE SKIP LOCKED splits the due rows between concurrent passes."""
    now = utcnow()
    with Session(pg_engine, expire_on_commit=False) as s:
        b = Builder(s)
        provider = b.provider()
        plan = b.user_plan([Licence("O365_BUSINESS_ESSENTIALS")], provider)
        customer = b.customer(provider, plans=[(plan, None)])
        ids = []
        for i in range(6):
            req = b.provision(b.user(customer, f"r{i}@contoso.com", plan=plan), plan)
            req.state, req.next_attempt_at = kinds.WAITING, now - timedelta(seconds=5)
            ids.append(req.id)
        s.commit()
    first, second = Session(pg_engine), Session(pg_engine)
    try:
        a = reconcile(first, now=now, settings=settings)  # holds its row locks until commit
        b_refs = reconcile(second, now=now, settings=settings)
        first.commit()
        second.commit()
    finally:
        first.close()
        second.close()
    mine_a = {r.id for r in a} & set(ids)
    mine_b = {r.id for r in b_refs} & set(ids)
    assert mine_a | mine_b == set(ids) and not mine_a & mine_b
    assert mine_a  # the first pass took them; the second skipped the locked rows


def _watermark(db, oldest_ids):  # type: ignore[no-untyped-def]
    from shared.pipeline.reconcile import Watermark, oldest_touched
    from worker.canvas import queue_for

    return Watermark(queue_for, oldest_touched(db, oldest_ids))


def test_a_message_still_behind_a_backlog_is_not_sent_again_a_lost_one_is(world, db, settings):
    """FIFO queues: the oldest waiting message (request `head`, touched at T) says everything sent
    before T was taken. Unclaimed requests touched before T lost their message; after T, they wait."""
    now = utcnow()
    lost = world.b.provision(world.user("lost@contoso.com"), world.plan)
    head = world.b.provision(world.user("head@contoso.com"), world.plan)
    behind = world.b.provision(world.user("behind@contoso.com"), world.plan)
    crashed = world.b.provision(world.user("crashed@contoso.com"), world.plan)
    due = now - timedelta(seconds=1)
    _set(db, lost, state=kinds.RUNNING, next_attempt_at=due, updated_at=now - timedelta(seconds=30))
    _set(db, head, state=kinds.RUNNING, next_attempt_at=due, updated_at=now - timedelta(seconds=20))
    _set(db, behind, state=kinds.QUEUED, next_attempt_at=due, updated_at=now - timedelta(seconds=10))
    # Claimed, and its lease ran out: its delivery died, whatever the queue holds.
    _set(db, crashed, state=kinds.RUNNING, next_attempt_at=due, lease_until=due, updated_at=now - timedelta(seconds=5))

    watermark = _watermark(db, {"provisioning": head.id, "polling": None, "sync": None})
    refs = reconcile(db, now=now, settings=settings, watermark=watermark)
    assert {r.id for r in refs} == {lost.id, crashed.id}
    db.flush()
    db.expire_all()
    for waiting in (head, behind):
        row = db.get(PR, waiting.id)
        assert row.next_attempt_at == now + timedelta(seconds=settings.redrive_after_s)  # looked at again later
        assert row.updated_at < now - timedelta(seconds=9)  # its send time kept for the next comparison


def test_an_empty_or_unreadable_queue_means_every_due_request_is_redriven(world, db, settings):
    now = utcnow()
    reqs = [world.b.provision(world.user(f"e{i}@contoso.com"), world.plan) for i in range(2)]
    for req in reqs:
        _set(db, req, state=kinds.RUNNING, next_attempt_at=now - timedelta(seconds=1))
    empty = _watermark(db, {"provisioning": None, "polling": None, "sync": None})
    assert {r.id for r in reconcile(db, now=now, settings=settings, watermark=empty)} == {r.id for r in reqs}
    for req in reqs:
        _set(db, req, state=kinds.RUNNING, next_attempt_at=now - timedelta(seconds=1))
    unknown = _watermark(db, {"provisioning": "?", "polling": "?", "sync": "?"})
    assert {r.id for r in reconcile(db, now=now, settings=settings, watermark=unknown)} == {r.id for r in reqs}
