"""The Redis fast path writes what Celery writes: same message, same event, read back from real Redis."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import redis

from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.settings import Settings
from worker import canvas, redis_publish
from worker.app import create_app

STEPS = kinds.steps_of(kinds.USER_PROVISION)
# Values that are fresh per message (ids, tags, clocks) or per process (origin): compared by shape.
FRESH = {"id", "root_id", "correlation_id", "delivery_tag", "task_id", "uuid", "clock", "timestamp", "origin",
         "hostname", "pid"}


@pytest.fixture
def broker(redis_url: str) -> Any:
    url = redis_url.rsplit("/", 1)[0] + "/4"  # its own db (the contract smoke uses 13 and 14)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url, client
    client.flushdb()
    client.close()
    redis_publish.reset()


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: (type(v).__name__ if k in FRESH else normalise(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def decode(raw: bytes) -> dict[str, Any]:
    message = json.loads(raw)
    message["body"] = json.loads(base64.b64decode(message["body"]))
    return message


def published(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [decode(raw) for raw in reversed(client.lrange(queue, 0, -1))]  # LPUSH + BRPOP: oldest last


@pytest.mark.parametrize("from_step", [STEPS[0], "wait_mailbox", STEPS[-1]])
def test_the_fast_path_writes_the_message_and_event_celery_writes(broker, from_step, monkeypatch):
    url, client = broker
    settings = Settings(environment="test", secret_key="x" * 32, broker_url=url, lease_seconds=300)
    app = create_app(settings)
    monkeypatch.setattr(canvas, "get_app", lambda: app)
    ref = RequestRef("7d0c3a52-1a0b-4c39-8a43-6f2a0f0c9e11", kinds.USER_PROVISION, from_step)
    queue = canvas.queue_for(ref.kind, from_step)
    events = client.pubsub()
    events.psubscribe("/4.celeryev/*")  # this test's db only: other runs publish events too
    assert events.get_message(timeout=2)["type"] == "psubscribe"

    with app.producer_or_acquire() as producer:  # Celery's own path
        canvas.chain_for(ref, settings).apply_async(producer=producer)
    fast = redis_publish.RedisChainPublisher(app, canvas.RUN_STEP, canvas.queue_for, canvas.time_limits(settings))
    fast.publish([ref])

    celery_msg, fast_msg = published(client, queue)
    assert normalise(fast_msg) == normalise(celery_msg)
    # The chain's own ids are fresh, distinct and the first is the root of all.
    chain = fast_msg["body"][2]["chain"] or []
    ids = [fast_msg["headers"]["id"], *(sig["options"]["task_id"] for sig in chain)]
    assert len(set(ids)) == len(ids) == len(STEPS) - STEPS.index(from_step)
    assert fast_msg["headers"]["root_id"] == fast_msg["properties"]["correlation_id"] == ids[0]

    sent = [events.get_message(timeout=2) for _ in range(2)]
    assert [m["channel"] for m in sent] == [b"/4.celeryev/task.sent"] * 2
    celery_event, fast_event = (decode(m["data"]) for m in sent)
    assert normalise(fast_event) == normalise(celery_event)
    assert fast_event["body"]["uuid"] == ids[0]
    events.close()


def test_a_batch_is_one_round_trip_in_order(broker):
    url, client = broker
    settings = Settings(environment="test", secret_key="x" * 32, broker_url=url, lease_seconds=300)
    app = create_app(settings)
    fast = redis_publish.RedisChainPublisher(app, canvas.RUN_STEP, canvas.queue_for, canvas.time_limits(settings))
    refs = [RequestRef(f"r{i}", kinds.USER_PROVISION, STEPS[0]) for i in range(500)]
    fast.publish(refs)
    messages = published(client, "provisioning")
    assert [m["body"][0][0] for m in messages] == [r.id for r in refs]  # first published is consumed first


def test_an_unknown_step_is_refused_before_anything_is_sent(broker):
    url, client = broker
    settings = Settings(environment="test", secret_key="x" * 32, broker_url=url)
    fast = redis_publish.RedisChainPublisher(create_app(settings), canvas.RUN_STEP, canvas.queue_for, (1.0, 2.0))
    with pytest.raises(ValueError):
        fast.publish([RequestRef("a", kinds.USER_PROVISION, STEPS[0]), RequestRef("b", kinds.USER_PROVISION, "x")])
    assert client.llen("provisioning") == 0


@pytest.mark.parametrize(("url", "options", "expected"), [
    ("redis://127.0.0.1:6379/0", {"visibility_timeout": 3600}, True),
    ("rediss://cache.example:6380/1", {}, True),
    ("sqla+sqlite:///broker.db", {}, False),
    ("redis://a:6379/0;redis://b:6379/0", {}, False),  # failover list: kombu picks the live one
    ("redis://127.0.0.1:6379/0", {"global_keyprefix": "tenant1:"}, False),
    ("sentinel://s1:26379", {"master_name": "m"}, False),
])
def test_only_plain_redis_takes_the_fast_path(url, options, expected):
    assert redis_publish.supported(url, options) is expected


def test_the_next_link_is_what_celerys_worker_sends_when_a_task_returns(broker, monkeypatch):
    from celery import signature

    url, client = broker
    settings = Settings(environment="test", secret_key="x" * 32, broker_url=url, lease_seconds=300)
    app = create_app(settings)
    monkeypatch.setattr(canvas, "get_app", lambda: app)
    fast = redis_publish.RedisChainPublisher(app, canvas.RUN_STEP, canvas.queue_for, canvas.time_limits(settings))
    fast.publish([RequestRef("7d0c3a52-1a0b-4c39-8a43-6f2a0f0c9e11", kinds.USER_PROVISION, STEPS[0])])
    first = published(client, "provisioning")[0]
    client.flushdb()
    chain = first["body"][2]["chain"]  # what the running task's request holds
    parent, root = first["headers"]["id"], first["headers"]["root_id"]

    with app.producer_or_acquire() as producer:  # Celery's trace: signature(chain[-1]).apply_async(chain=rest)
        signature(chain[-1], app=app).apply_async((None,), chain=chain[:-1], parent_id=parent, root_id=root,
                                                  producer=producer)
    fast.publish_next(chain, parent_id=parent, root_id=root)

    celery_msg, fast_msg = published(client, "provisioning")
    assert normalise(fast_msg["headers"]) == normalise(celery_msg["headers"]), (fast_msg["headers"],
                                                                               celery_msg["headers"])
    assert normalise(fast_msg) == normalise(celery_msg)
    assert fast_msg["headers"]["id"] == celery_msg["headers"]["id"] == chain[-1]["options"]["task_id"]
    assert fast_msg["headers"]["parent_id"] == parent and fast_msg["headers"]["root_id"] == root
    assert fast_msg["body"][2]["chain"] == chain[:-1]


def test_send_next_takes_the_link_off_the_request_so_celery_does_not_send_it_twice(broker, monkeypatch):
    from types import SimpleNamespace

    url, client = broker
    settings = Settings(environment="test", secret_key="x" * 32, broker_url=url, lease_seconds=300)
    app = create_app(settings)
    monkeypatch.setattr(canvas, "get_app", lambda: app)
    monkeypatch.setattr(canvas, "get_settings", lambda: settings)
    fast = redis_publish.RedisChainPublisher(app, canvas.RUN_STEP, canvas.queue_for, canvas.time_limits(settings))
    fast.publish([RequestRef("r-1", kinds.USER_PROVISION, STEPS[-2])])
    first = published(client, "provisioning")[0]
    request = SimpleNamespace(chain=first["body"][2]["chain"], id=first["headers"]["id"], root_id=None)
    canvas.send_next(request)
    assert request.chain is None
    sent = published(client, "provisioning")
    assert [m["body"][0] for m in sent] == [["r-1", STEPS[-2]], ["r-1", STEPS[-1]]]
    canvas.send_next(request)  # nothing left: nothing sent
    assert len(published(client, "provisioning")) == 2


def test_the_oldest_waiting_message_of_each_queue_is_read_for_the_watermark(broker):
    url, client = broker
    settings = Settings(environment="test", secret_key="x" * 32, broker_url=url, lease_seconds=300)
    app = create_app(settings)
    fast = redis_publish.RedisChainPublisher(app, canvas.RUN_STEP, canvas.queue_for, canvas.time_limits(settings))
    fast.publish([RequestRef(f"r{i}", kinds.USER_PROVISION, STEPS[0]) for i in range(3)])
    client.lpush("sync", b'{"headers": {"task": "worker.tasks.sync.run_sync"}, "body": ""}')  # not a step
    assert fast.oldest_waiting(canvas.STEP_QUEUES) == {"provisioning": "r0", "polling": None, "sync": "?"}
    client.rpop("provisioning")  # a worker took r0
    assert fast.oldest_waiting(["provisioning"]) == {"provisioning": "r1"}


def test_when_the_direct_send_fails_the_link_stays_for_celery_to_send(broker, monkeypatch):
    from types import SimpleNamespace

    url, _client = broker
    settings = Settings(environment="test", secret_key="x" * 32, broker_url=url, lease_seconds=300)
    app = create_app(settings)
    monkeypatch.setattr(canvas, "get_app", lambda: app)
    monkeypatch.setattr(canvas, "get_settings", lambda: settings)
    fast = redis_publish.publisher_for(app, canvas.RUN_STEP, canvas.queue_for, canvas.time_limits(settings))

    def down(*_a, **_k):  # type: ignore[no-untyped-def]
        raise redis.ConnectionError("Redis is restarting")

    monkeypatch.setattr(fast, "publish_next", down)
    chain = [{"task": canvas.RUN_STEP, "args": ["r", STEPS[-1]], "kwargs": {}, "options": {}}]
    request = SimpleNamespace(chain=chain, id="t1", root_id="t0")
    canvas.send_next(request)
    assert request.chain is chain  # not lost: Celery's tracer sends it when the task returns
