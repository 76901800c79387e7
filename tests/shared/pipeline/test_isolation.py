"""Suspects run alone: the process lock lets steps run side by side, and a suspect only by itself."""
from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import update

from shared.db.models import ProvisioningRequest
from shared.db.types import utcnow
from shared.pipeline.engine import Engine
from shared.pipeline.isolation import Isolation, ProcessIsolation
from shared.requests import kinds

PR = ProvisioningRequest


def test_steps_share_the_process_and_a_suspect_waits_for_them_then_runs_alone() -> None:
    lock = ProcessIsolation()
    events: list[str] = []
    first_in, release_first = threading.Event(), threading.Event()

    def step(name: str, entered: threading.Event | None = None, hold: threading.Event | None = None) -> None:
        with lock.shared():
            events.append(f"{name} in")
            if entered:
                entered.set()
            if hold:
                hold.wait(5)
            events.append(f"{name} out")

    def suspect() -> None:
        with lock.exclusive():
            events.append("suspect in")
            time.sleep(0.05)
            events.append("suspect out")

    a = threading.Thread(target=step, args=("a", first_in, release_first))
    a.start()
    assert first_in.wait(5)
    step("b")  # a second step runs beside the first
    s = threading.Thread(target=suspect)
    s.start()
    time.sleep(0.1)
    c = threading.Thread(target=step, args=("c",))  # arrives while the suspect waits: queues behind it
    c.start()
    time.sleep(0.1)
    assert "suspect in" not in events and "c in" not in events
    release_first.set()
    for t in (a, s, c):
        t.join(5)
    assert events == ["a in", "b in", "b out", "a out", "suspect in", "suspect out", "c in", "c out"]


class Recording(Isolation):
    isolates = True

    def __init__(self) -> None:
        self.modes: list[str] = []

    def shared(self):  # type: ignore[no-untyped-def]
        self.modes.append("shared")
        return super().shared()

    def exclusive(self):  # type: ignore[no-untyped-def]
        self.modes.append("exclusive")
        return super().exclusive()


def test_a_step_whose_last_delivery_never_finished_runs_exclusively(world, db, ms, settings, maker, published):
    lock = Recording()
    engine = Engine(ms, settings=settings, session_factory=maker, isolation=lock)
    healthy = world.b.provision(world.user("ann@contoso.com"), world.plan)
    assert engine.run(healthy.id, "reserve_seat").action == "continue"
    assert lock.modes == ["shared"]

    crashed = world.b.provision(world.user("bob@contoso.com"), world.plan)
    # Claimed once, the lease ran out, no outcome: what a killed process leaves behind.
    db.execute(update(PR).where(PR.id == crashed.id).values(deliveries=1, state=kinds.RUNNING, lease_until=None))
    lock.modes.clear()
    assert engine.run(crashed.id, "reserve_seat").action == "continue"
    assert lock.modes == ["shared", "exclusive"]
    db.expire_all()
    assert db.get(PR, crashed.id).deliveries == 0  # an outcome resets the count

    # A copy of a message for a step another delivery holds right now is not a suspect: it just halts.
    busy = world.b.provision(world.user("cy@contoso.com"), world.plan)
    assert engine.run(busy.id, "reserve_seat").action == "continue"
    db.execute(update(PR).where(PR.id == busy.id).values(deliveries=1, state=kinds.RUNNING,
                                                          lease_until=utcnow() + timedelta(hours=1)))
    lock.modes.clear()
    assert engine.run(busy.id, "ensure_user").action == "halt"
    assert lock.modes == ["shared"]
