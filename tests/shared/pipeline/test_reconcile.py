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


def test_a_redrive_is_a_new_dispatch_and_each_one_without_a_claim_waits_twice_as_long(world, db, settings):
    """Postgres cannot tell a lost message from one queued behind a backlog: both are published again,
    under a new dispatch (the older copy stops at its claim), and ever less often while nobody claims."""
    now = utcnow()
    req = world.b.provision(world.user("backlog@contoso.com"), world.plan)
    _set(db, req, state=kinds.RUNNING, next_attempt_at=now - timedelta(seconds=1))
    looks = []
    for _ in range(7):
        (again,) = reconcile(db, now=now, settings=settings)
        db.flush()
        row = db.get(PR, req.id)
        assert again.dispatch == row.dispatch and again.from_step == "reserve_seat"
        looks.append((row.next_attempt_at - now).total_seconds() / settings.redrive_after_s)
        _set(db, req, next_attempt_at=now - timedelta(seconds=1))
    assert looks == [1, 2, 4, 8, 16, 16, 16]
    assert db.get(PR, req.id).dispatch == 1 + 7


def test_a_claim_resets_the_redrive_backoff(world, db, settings, engine):
    now = utcnow()
    req = world.b.provision(world.user("claimed@contoso.com"), world.plan)
    _set(db, req, state=kinds.RUNNING, next_attempt_at=now - timedelta(seconds=1), redrives=3, dispatch=4)
    assert engine.run(req.id, "reserve_seat", 4).action == "continue"
    db.expire_all()
    assert db.get(PR, req.id).redrives == 0
