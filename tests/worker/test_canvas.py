"""The chains: one run_step per remaining step, ids only, probes on polling, one producer for many."""
from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest

from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.settings import Settings
from worker import canvas


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", secret_key="x" * 32, broker_url="memory://", lease_seconds=60)


def test_a_chain_runs_the_remaining_steps_with_ids_only(settings):
    sig = canvas.chain_for(RequestRef("r1", kinds.USER_PROVISION, "assign_licences"), settings)
    tasks = sig.tasks
    assert [t.args for t in tasks] == [("r1", "assign_licences"), ("r1", "wait_mailbox"), ("r1", "apply_aliases"),
                                       ("r1", "notify")]
    assert {t.task for t in tasks} == {canvas.RUN_STEP}
    assert all(t.immutable for t in tasks)  # no result travels from one step to the next
    assert [t.options["queue"] for t in tasks] == ["provisioning", "polling", "provisioning", "provisioning"]
    soft, hard = canvas.time_limits(settings)
    assert all(t.options["time_limit"] == hard < settings.lease_seconds for t in tasks)
    assert all(t.options["soft_time_limit"] == soft < hard for t in tasks)


def test_sync_requests_run_on_the_sync_queue(settings):
    sig = canvas.chain_for(RequestRef("r2", kinds.CUSTOMER_SYNC, "sync"), settings)
    assert {t.options["queue"] for t in sig.tasks} == {"sync"}


def test_an_unknown_step_is_refused(settings):
    with pytest.raises(ValueError):
        canvas.chain_for(RequestRef("r3", kinds.USER_PROVISION, "nope"), settings)


def test_publishing_many_chains_uses_one_producer(monkeypatch):
    producers, sent = [], []

    class App:
        conf = SimpleNamespace(broker_url="memory://", broker_transport_options={})

        @contextmanager
        def producer_or_acquire(self):
            producers.append(object())
            yield producers[-1]

    class Chain:
        def __init__(self, ref):
            self.ref = ref

        def apply_async(self, producer=None):
            sent.append((self.ref.id, producer))

    monkeypatch.setattr(canvas, "get_app", App)
    monkeypatch.setattr(canvas, "chain_for", lambda ref, _settings: Chain(ref))
    canvas.publish([RequestRef(str(i), kinds.USER_PROVISION, "reserve_seat") for i in range(1000)])
    assert len(producers) == 1 and len(sent) == 1000 and {p for _, p in sent} == {producers[0]}


def _link(step: str) -> dict[str, object]:
    return {"task": canvas.RUN_STEP, "args": ["r1", step], "options": {"queue": "provisioning"}}


def test_links_the_engine_ran_on_are_dropped_from_the_running_chain():
    # Celery keeps the rest of a chain reversed: the next link is the last item.
    request = SimpleNamespace(chain=[_link("notify"), _link("apply_aliases"), _link("wait_mailbox"),
                                     _link("assign_licences")])
    canvas.drop_links(request, ["assign_licences", "wait_mailbox"])
    assert [link["args"][1] for link in request.chain] == ["notify", "apply_aliases"]


def test_a_chain_that_does_not_go_on_with_the_steps_run_on_is_left_from_there():
    request = SimpleNamespace(chain=[_link("notify"), _link("apply_aliases")])
    canvas.drop_links(request, ["assign_licences"])
    assert len(request.chain) == 2
    empty = SimpleNamespace(chain=None)
    canvas.drop_links(empty, ["assign_licences"])
    assert empty.chain is None


def test_a_retry_after_run_on_goes_to_the_queue_of_its_step():
    assert canvas.queue_after_run_on("provisioning", "wait_mailbox") == "polling"
    assert canvas.queue_after_run_on("polling", "apply_aliases") == "provisioning"
    assert canvas.queue_after_run_on("sync", "sync") == "sync"
    assert canvas.queue_after_run_on(None, "notify") is None
