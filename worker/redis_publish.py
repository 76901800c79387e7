"""Chains written straight to Redis: the messages Celery would send, in one pipeline per batch.

Celery spends about 1.2 ms of CPU per chain it publishes (cloning and freezing five signatures,
`saferepr` of the arguments, kombu's envelope, a new redis-py client object per command, a round
trip for the message and another for its task-sent event). The API publishes a chain for every
accepted user, so that was a quarter of its CPU. Here the same bytes are built from a template
and sent for a whole batch in one round trip (about 30 µs a chain).

What is written is Celery's task message protocol 2 inside kombu's Redis envelope, exactly as
`chain(...).apply_async()` writes it (tests/worker/test_redis_publish.py compares the two), so
any worker, Flower and `celery inspect` read it unchanged. Only the plain Redis transport takes
this path; any other broker (the embedded SQLite one, Sentinel, a key prefix) keeps Celery's.
"""
from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
from celery import Celery
from celery.utils.nodenames import anon_nodename

from shared.requests import kinds
from shared.requests.dispatch import RequestRef

# Transport options that change key names or routing: with any of them, Celery publishes.
_UNSUPPORTED_OPTIONS = frozenset({"global_keyprefix", "sep", "priority_steps", "queue_order_strategy",
                                  "master_name", "sentinel_kwargs"})


def supported(broker_url: str, transport_options: dict[str, Any]) -> bool:
    """Plain Redis (one URL, no key prefix or Sentinel): the only broker this path writes for."""
    if ";" in broker_url or urlsplit(broker_url).scheme not in ("redis", "rediss"):
        return False
    return not (_UNSUPPORTED_OPTIONS & set(transport_options))


class RedisChainPublisher:
    """Builds each chain's first message (the rest ride in it, as Celery's `chain` embed) and pushes
    a batch of them, with their task-sent events, in one non-transactional pipeline."""

    def __init__(self, app: Celery, run_step: str, queue_for: Any, limits: tuple[float, float]) -> None:
        conf = app.conf
        self.client = redis.Redis.from_url(conf.broker_url, socket_keepalive=True, health_check_interval=30)
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self.events = bool(conf.task_send_sent_event)
        self.event_channel = f"/{db}.celeryev/task.sent"  # kombu's fanout_prefix + fanout_patterns naming
        self.clock = app.clock
        self.origin = anon_nodename()
        self.reply_to = app.thread_oid
        self.run_step = run_step
        self.queue_for = queue_for
        self.soft, self.hard = limits

    def publish(self, refs: Sequence[RequestRef]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for ref in refs:
            queue, message, event = self.messages(ref)
            pipe.lpush(queue, message)
            if event is not None:
                pipe.publish(self.event_channel, event)
        pipe.execute()

    def publish_next(self, chain: list[dict[str, Any]], *, parent_id: str, root_id: str) -> None:
        """A chain's next link, as Celery's worker sends it when a task returns: the last signature of
        the embedded chain, carrying the rest (`chain` as the running task's request holds it)."""
        first, rest = chain[-1], chain[:-1]
        options = first.get("options") or {}
        args = list(first.get("args") or [])
        queue, task_id = str(options["queue"]), str(options["task_id"])
        hard, soft = options.get("time_limit"), options.get("soft_time_limit")
        argsrepr = repr(args)  # a list here, as Celery writes it for a link read back from a message
        message = self._task_message(first["task"], task_id, args, rest, queue, argsrepr,
                                     limits=[hard, soft], root_id=root_id, parent_id=parent_id)
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(queue, message)
        if self.events:
            pipe.publish(self.event_channel, self._sent_event(task_id, queue, argsrepr, name=first["task"],
                                                              root_id=root_id, parent_id=parent_id))
        pipe.execute()

    def oldest_waiting(self, queues: Sequence[str], scan: int = 20) -> dict[str, str | None]:
        """{queue: request id of the oldest run_step message waiting in it, None if the queue is empty,
        "?" if the oldest `scan` messages are all other tasks or unreadable}: for the reconciler's
        watermark (shared/pipeline/reconcile.py). BRPOP takes from the right end: the oldest is last."""
        pipe = self.client.pipeline(transaction=False)
        for queue in queues:
            pipe.lrange(queue, -scan, -1)
        out: dict[str, str | None] = {}
        for queue, raws in zip(queues, pipe.execute(), strict=True):
            out[queue] = None if not raws else "?"
            for raw in reversed(raws):
                request_id = self._run_step_request(raw)
                if request_id is not None:
                    out[queue] = request_id
                    break
        return out

    def _run_step_request(self, raw: bytes) -> str | None:
        try:
            message = orjson.loads(raw)
            if message.get("headers", {}).get("task") != self.run_step:
                return None
            args = orjson.loads(base64.b64decode(message["body"]))[0]
            return str(args[0])
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def messages(self, ref: RequestRef) -> tuple[str, bytes, bytes | None]:
        """(queue, the task message, its task-sent event or None) for the chain from `ref.from_step`."""
        steps = kinds.steps_of(ref.kind)
        if ref.from_step not in steps:
            raise ValueError(f"{ref.from_step!r} is not a step of {ref.kind}")
        names = steps[steps.index(ref.from_step):]
        ids = [str(uuid.uuid4()) for _ in names]
        first, queue = ids[0], self.queue_for(ref.kind, names[0])
        args = [ref.id, names[0]]
        # Celery's chain embed: the remaining signatures, last step first (the worker pops from the end).
        rest = [{"task": self.run_step, "args": [ref.id, name], "kwargs": {},
                 "options": {"queue": self.queue_for(ref.kind, name), "soft_time_limit": self.soft,
                             "time_limit": self.hard, "task_id": task_id, "reply_to": self.reply_to},
                 "subtask_type": None, "immutable": True}
                for name, task_id in zip(reversed(names[1:]), reversed(ids[1:]), strict=True)]
        argsrepr = repr(tuple(args))
        message = self._task_message(self.run_step, first, args, rest, queue, argsrepr,
                                     limits=[self.hard, self.soft], root_id=first, parent_id=None)
        event = self._sent_event(first, queue, argsrepr, name=self.run_step, root_id=first,
                                 parent_id=None) if self.events else None
        return queue, message, event

    def _task_message(self, name: str, task_id: str, args: list[Any], rest: list[dict[str, Any]], queue: str,
                      argsrepr: str, *, limits: list[Any], root_id: str, parent_id: str | None) -> bytes:
        body = orjson.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": rest, "chord": None}])
        return orjson.dumps({
            "body": base64.b64encode(body).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"lang": "py", "task": name, "id": task_id, "shadow": None, "eta": None,
                        "expires": None, "group": None, "group_index": None, "retries": 0,
                        "timelimit": limits, "root_id": root_id, "parent_id": parent_id,
                        "argsrepr": argsrepr, "kwargsrepr": "{}", "origin": self.origin, "ignore_result": True,
                        "replaced_task_nesting": 0, "stamped_headers": None, "stamps": {}},
            "properties": {"correlation_id": task_id, "reply_to": self.reply_to, "delivery_mode": 2,
                           "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
                           "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
        })

    def _sent_event(self, task_id: str, queue: str, argsrepr: str, *, name: str, root_id: str,
                    parent_id: str | None) -> bytes:
        fields = {"hostname": self.origin, "utcoffset": 0.0, "pid": os.getpid(), "clock": self.clock.forward(),
                  "uuid": task_id, "root_id": root_id, "parent_id": parent_id, "name": name, "args": argsrepr,
                  "kwargs": "{}", "retries": 0, "eta": None, "expires": None, "queue": queue, "exchange": "",
                  "routing_key": queue, "timestamp": time.time(), "type": "task-sent"}
        return orjson.dumps({
            "body": base64.b64encode(orjson.dumps(fields)).decode(),
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": {"hostname": self.origin},
            "properties": {"delivery_mode": 1, "delivery_info": {"exchange": "celeryev", "routing_key": "task.sent"},
                           "priority": 0, "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
        })


_lock = threading.Lock()
_publisher: tuple[int, Celery, RedisChainPublisher] | None = None


def publisher_for(app: Celery, run_step: str, queue_for: Any, limits: tuple[float, float]) -> RedisChainPublisher:
    """One per process and app (its connection pool must not cross a fork)."""
    global _publisher
    with _lock:
        if _publisher is None or _publisher[0] != os.getpid() or _publisher[1] is not app \
                or (_publisher[2].soft, _publisher[2].hard) != limits:
            _publisher = (os.getpid(), app, RedisChainPublisher(app, run_step, queue_for, limits))
        return _publisher[2]


def reset() -> None:
    global _publisher
    with _lock:
        if _publisher is not None:
            _publisher[2].client.close()
        _publisher = None
