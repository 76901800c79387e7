"""At most one sync per customer: concurrent triggers, stale claims, redelivered runs, concurrent dispatchers."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from shared.db.models import SyncPolicy, SyncRun
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.microsoft.factory import get_microsoft
from shared.sync.engine import dispatch_due_syncs, run_sync
from tests.shared.sync.builders import BASIC, SyncWorld

TRIGGERS = 4


class _HeldGraph:
    """The real Graph client, except that reading domains waits until `release` is set."""

    def __init__(self, graph: Any, entered: threading.Event, release: threading.Event) -> None:
        self._graph, self._entered, self._release = graph, entered, release

    def domains(self) -> list[dict[str, Any]]:
        self._entered.set()
        assert self._release.wait(20), "the other triggers never finished"
        return list(self._graph.domains())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._graph, name)


class _HeldMicrosoft:
    def __init__(self, entered: threading.Event, release: threading.Event) -> None:
        self._entered, self._release = entered, release

    def graph(self, credential: Any, tenant_id: str) -> _HeldGraph:
        return _HeldGraph(get_microsoft().graph(credential, tenant_id), self._entered, self._release)


def test_concurrent_triggers_for_one_customer_run_one_sync(sync_world: SyncWorld):
    w = sync_world
    w.tenant()
    w.add_entra_users(w.entra_user(f"amy@{w.verified}", BASIC))
    cid = w.customer(import_unknown=True)
    entered, release = threading.Event(), threading.Event()
    held = _HeldMicrosoft(entered, release)
    start = threading.Barrier(TRIGGERS)

    def trigger(n: int) -> Any:
        start.wait(10)
        return run_sync(cid, trigger="manual" if n % 2 else "schedule", microsoft=held)

    with ThreadPoolExecutor(TRIGGERS) as pool:
        futures = [pool.submit(trigger, n) for n in range(TRIGGERS)]
        # Whoever claimed waits inside Graph; the others must come back "skipped" meanwhile.
        assert entered.wait(20)
        deadline = time.monotonic() + 20
        while sum(f.done() for f in futures) < TRIGGERS - 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        finished_while_held = sum(f.done() for f in futures)
        release.set()
        results = [f.result(30) for f in futures]

    assert finished_while_held == TRIGGERS - 1
    assert sorted(r.state for r in results) == ["skipped"] * (TRIGGERS - 1) + ["succeeded"]
    assert [r.created for r in results if r.ran] == [1]
    assert len(w.runs()) == 1
    assert w.policy().running_since is None


def test_a_stale_claim_is_taken_over_and_its_run_marked_abandoned(sync_world: SyncWorld):
    w = sync_world
    w.tenant()
    cid = w.customer()
    dead = utcnow() - timedelta(hours=2)
    with UnitOfWork() as uow:
        uow.session.add(SyncRun(customer_id=cid, state="running", started_at=dead))
        uow.session.get(SyncPolicy, cid).running_since = dead
        uow.commit()

    result = run_sync(cid)

    assert result.state == "succeeded"
    states = sorted((r.state, (r.error or "")[:9]) for r in w.runs())
    assert states == [("failed", "abandoned"), ("succeeded", "")]


def test_a_fresh_claim_is_respected(sync_world: SyncWorld):
    w = sync_world
    w.tenant()
    cid = w.customer()
    w.update(SyncPolicy, cid, running_since=utcnow() - timedelta(seconds=30))
    result = run_sync(cid)
    assert (result.state, result.ran) == ("skipped", False)
    assert w.runs() == []


def test_a_redelivered_run_id_answers_from_its_row_without_syncing_again(sync_world: SyncWorld):
    w = sync_world
    w.tenant()
    cid = w.customer()
    first = run_sync(cid, run_id="0f0f0f0f-0000-4000-8000-000000000001")
    again = run_sync(cid, run_id="0f0f0f0f-0000-4000-8000-000000000001")
    assert first.state == again.state == "succeeded"
    assert again == first
    assert len(w.runs()) == 1


def test_concurrent_dispatchers_hand_out_each_due_customer_once(sync_world: SyncWorld):
    w = sync_world
    w.tenant()
    due = [w.customer() for _ in range(4)]
    disabled, running, later = w.customer(), w.customer(), w.customer()
    not_connected = w.customer(connected=False)
    now = utcnow()
    w.update(SyncPolicy, due[0], next_run_at=now - timedelta(minutes=5))
    w.update(SyncPolicy, disabled, enabled=False)
    w.update(SyncPolicy, running, running_since=now - timedelta(seconds=10))
    w.update(SyncPolicy, later, next_run_at=now + timedelta(minutes=5))
    mine = {*due, disabled, running, later, not_connected}
    start = threading.Barrier(2)

    def dispatch() -> list[str]:
        start.wait(10)
        return dispatch_due_syncs(now)

    with ThreadPoolExecutor(2) as pool:
        picked = [c for ids in pool.map(lambda _: dispatch(), range(2)) for c in ids if c in mine]

    assert sorted(picked) == sorted(due)
    with UnitOfWork() as uow:
        next_runs = set(uow.session.scalars(select(SyncPolicy.next_run_at).where(SyncPolicy.customer_id.in_(due))))
    assert next_runs == {now + timedelta(minutes=60)}
    assert [c for c in dispatch_due_syncs(now) if c in mine] == []
    # An hour on, the claim of `running` is stale (its holder is presumed dead): it is due again too.
    assert sorted(c for c in dispatch_due_syncs(now + timedelta(minutes=61)) if c in mine) == sorted(
        [*due, later, running])
