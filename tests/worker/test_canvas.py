"""The chains: one `steps.<name>` task per remaining step, ids only, routed by step, published in batches."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.settings import Settings, reset_settings
from worker import app as worker_app
from worker import canvas
from worker.queues import PROVISIONING, QUEUES, queue_of_step, step_task


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", secret_key="x" * 32, broker_url="memory://", lease_seconds=60)


def test_a_chain_runs_the_remaining_steps_with_ids_only(settings):
    sig = canvas.chain_for(RequestRef("r1", kinds.USER_PROVISION, "assign_licences", 3), settings)
    tasks = sig.tasks
    assert [t.task for t in tasks] == [step_task(s) for s in ("assign_licences", "wait_mailbox", "apply_aliases",
                                                               "notify")]
    assert {t.args for t in tasks} == {("r1", "3")}  # the request and its dispatch: nothing else travels
    assert all(t.immutable for t in tasks)  # no result travels from one step to the next
    soft, hard = canvas.time_limits(settings)
    assert all(t.options["time_limit"] == hard < settings.lease_seconds for t in tasks)
    assert all(t.options["soft_time_limit"] == soft < hard for t in tasks)


def test_later_links_of_a_chain_carry_a_higher_priority_on_redis(settings):
    """Redis consumes priority 0 first: a request's later steps must not wait behind new requests. Links
    routed to polling or sync (one kind of work each) carry none."""
    for kind in kinds.STEPS:
        steps = kinds.steps_of(kind)
        links = canvas.chain_for(RequestRef("r", kind, steps[0], 1), settings).tasks
        priorities = [t.options["priority"] for t in links if "priority" in t.options]
        assert priorities == sorted(priorities, reverse=True), kind
        assert len(priorities) == 1 or priorities[0] > priorities[-1], kind
        assert all(queue_of_step(s) == PROVISIONING for s, t in zip(steps, links, strict=True)
                   if "priority" in t.options), kind
    # A chain re-driven from a later step keeps that step's place, not the first link's.
    (redriven, *_) = canvas.chain_for(RequestRef("r", kinds.USER_PROVISION, "assign_licences", 2), settings).tasks
    assert redriven.options["priority"] == 0
    probe = canvas.chain_for(RequestRef("r", kinds.USER_PROVISION, "wait_mailbox", 2), settings).tasks[0]
    assert "priority" not in probe.options


def test_an_unknown_step_is_refused(settings):
    with pytest.raises(ValueError):
        canvas.chain_for(RequestRef("r3", kinds.USER_PROVISION, "nope", 1), settings)


def test_every_step_of_every_kind_is_a_registered_task():
    tasks = worker_app.get_app().tasks
    assert {step_task(s) for s in kinds.all_steps()} <= set(tasks)


@pytest.fixture
def broker(redis_url: str, settings_env: pytest.MonkeyPatch) -> Iterator[Celery]:
    """The product's Celery app on a real Redis broker db of its own, emptied before and after."""
    url = redis_url.rsplit("/", 1)[0] + "/13"
    settings_env.setenv("BROKER_URL", url)
    reset_settings()
    worker_app.reset_app()
    app = worker_app.get_app()
    _purge(app)
    yield app
    _purge(app)
    worker_app.reset_app()


def _purge(app: Celery) -> None:
    with app.connection_for_write() as conn:
        for queue in QUEUES:
            conn.default_channel.queue_purge(queue)


def _waiting(app: Celery, queue: str) -> list[dict[str, Any]]:
    """The messages waiting in `queue`, taken through kombu's public consumer API (headers only)."""
    out = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue, no_ack=True)
        try:
            while True:
                try:
                    out.append(simple.get(timeout=0.2).headers)
                except simple.Empty:
                    return out
        finally:
            simple.close()


def test_many_chains_go_to_the_broker_in_one_batch_each_on_its_first_steps_queue(broker):
    refs = [RequestRef(f"r{i}", kinds.USER_PROVISION, "reserve_seat", 1) for i in range(300)]
    refs += [RequestRef("probe", kinds.USER_PROVISION, "wait_mailbox", 4),
             RequestRef("sync", kinds.CUSTOMER_SYNC, "sync", 2)]
    canvas.publish(refs)
    provisioning = _waiting(broker, "provisioning")
    assert len(provisioning) == 300 and {h["task"] for h in provisioning} == {step_task("reserve_seat")}
    assert {h["argsrepr"] for h in provisioning} >= {"('r0', '1')", "('r299', '1')"}
    (probe,) = _waiting(broker, "polling")  # mailbox probes never wait behind provisioning work
    assert (probe["task"], probe["argsrepr"]) == (step_task("wait_mailbox"), "('probe', '4')")
    (sync,) = _waiting(broker, "sync")
    assert sync["task"] == step_task("sync")


def test_a_started_request_is_consumed_before_new_requests_published_earlier(broker):
    """On the real broker: 50 new requests wait in the queue; a request at a later step, published after
    them, is the first message a consumer gets (then the new ones, in their order)."""
    canvas.publish([RequestRef(f"new{i}", kinds.USER_PROVISION, "reserve_seat", 1) for i in range(50)])
    canvas.publish([RequestRef("started", kinds.USER_PROVISION, "apply_aliases", 1)])
    # /metrics counts every priority level of a queue (kombu's size, not one Redis list's length).
    assert worker_app.queue_depths() == {"provisioning": 51, "polling": 0, "sync": 0}
    waiting = _waiting(broker, "provisioning")
    assert [h["argsrepr"] for h in waiting[:2]] == ["('started', '1')", "('new0', '1')"]
    assert len(waiting) == 51 and waiting[-1]["argsrepr"] == "('new49', '1')"
