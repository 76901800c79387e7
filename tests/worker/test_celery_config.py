"""The Celery configuration DESIGN.md asks for, asserted."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery.signals import beat_init

from shared.requests import dispatch
from shared.settings import load_settings
from worker import canvas
from worker.app import beat_schedule, celery_config, create_app
from worker.queues import QUEUES


@pytest.fixture
def conf(settings_env: pytest.MonkeyPatch) -> dict[str, object]:
    settings_env.setenv("BROKER_URL", "redis://127.0.0.1:6379/0")
    return celery_config(load_settings())


def test_durable_delivery(conf: dict[str, object]) -> None:
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_ignore_result"] is True  # no results (and so no secrets) stored in the broker


def test_events_json_and_limits(conf: dict[str, object]) -> None:
    assert conf["worker_send_task_events"] is True and conf["task_send_sent_event"] is True
    assert conf["accept_content"] == ["json"] and conf["task_serializer"] == "json"
    soft, hard = conf["task_soft_time_limit"], conf["task_time_limit"]
    assert isinstance(soft, int) and isinstance(hard, int) and 0 < soft < hard
    assert float(conf["worker_soft_shutdown_timeout"]) > 0  # type: ignore[arg-type]


def test_queues_and_routes(conf: dict[str, object]) -> None:
    assert set(QUEUES) == {"provisioning", "polling", "sync"}
    names = {q.name for q in conf["task_queues"]}  # type: ignore[attr-defined]
    assert names == {*QUEUES, "celery"}  # celery: declared for `-Q ...,celery`, never routed to
    routes = conf["task_routes"]
    assert isinstance(routes, dict) and {r["queue"] for r in routes.values()} <= set(QUEUES)
    assert conf["task_create_missing_queues"] is False


def test_visibility_timeout_outlasts_any_countdown(conf: dict[str, object]) -> None:
    opts = conf["broker_transport_options"]
    assert isinstance(opts, dict)
    assert opts["visibility_timeout"] > load_settings().max_countdown_s * 10


def test_beat_schedule_in_one_place(settings_env: pytest.MonkeyPatch) -> None:
    sched = beat_schedule(load_settings())
    assert {"reconcile-requests", "dispatch-due-syncs", "send-outbox", "cleanup",
            "resume-signed-agreements"} <= set(sched)
    assert sched["resume-signed-agreements"]["task"] == "worker.tasks.maintenance.resume_signed_agreements"
    app = create_app(load_settings())
    for entry in sched.values():
        assert entry["task"] in app.tasks, f"beat names an unknown task {entry['task']}"


def test_every_task_routes_to_a_known_queue(settings_env: pytest.MonkeyPatch) -> None:
    app = create_app(load_settings())
    ours = [name for name in app.tasks if name.startswith("worker.")]
    assert ours, "no tasks registered"
    for name in ours:
        route = app.amqp.router.route({}, name)
        assert route["queue"].name in QUEUES, name


@pytest.fixture
def no_publisher() -> Iterator[None]:
    dispatch.set_publisher(None)
    yield
    dispatch.set_publisher(None)


def test_a_worker_publishes_however_it_was_started(settings_env: pytest.MonkeyPatch, no_publisher: None) -> None:
    # `celery -A worker.app:app worker` never passes through commands/: the worker's start-up installs it.
    settings_env.setenv("BROKER_URL", "memory://")
    app = create_app(load_settings())
    with pytest.raises(dispatch.NoPublisher):
        dispatch.get_publisher()  # building the app installs nothing (the API builds it lazily)
    app.WorkController(hostname="wiring@test", pool_cls="solo", concurrency=1)
    assert dispatch.get_publisher() is canvas.publish


def test_beat_publishes_too(no_publisher: None) -> None:
    beat_init.send(sender=None)
    assert dispatch.get_publisher() is canvas.publish
