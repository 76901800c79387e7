"""Temporary passwords (and the reseller's secret) never appear in Redis, the logs or task results; passwords
only encrypted, then wiped."""
from __future__ import annotations

import base64
import contextlib
import json
import threading
from typing import Any

import pytest
import redis
from sqlalchemy import create_engine, select, text

from shared.db.models import NotificationRecipients, OutboxMessage, UserService
from shared.requests import kinds
from shared.security import decrypt, generate_password
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack, pipeline_redis
from tests.harness.seeding import PARTNER_SECRET
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _texts(value: Any) -> list[str]:
    """A Redis value as text, with kombu's base64 message bodies decoded too."""
    raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    out = [raw]
    try:
        message = json.loads(raw)
    except ValueError:
        return out
    if isinstance(message, dict) and isinstance(message.get("body"), str):
        with contextlib.suppress(ValueError):
            out.append(base64.b64decode(message["body"]).decode("utf-8", "replace"))
    return out


def _snapshot(client: redis.Redis) -> list[str]:
    seen: list[str] = []
    for key in client.scan_iter(count=500):
        kind = client.type(key)
        seen.append(key.decode())
        if kind == b"string":
            values = [client.get(key)]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"hash":
            values = list(client.hgetall(key).values())
        elif kind == b"zset":
            values = client.zrange(key, 0, -1)
        elif kind == b"set":
            values = list(client.smembers(key))
        else:
            values = []
        for v in values:
            seen.extend(_texts(v))
    return seen


def test_the_password_appears_nowhere_but_encrypted(seeder, emulator, pipeline_env, pipeline_pg_url):
    tenant = seeder.tenant(units=10)
    with seeder.session() as s:  # the customer's own recipients: the only ones the password goes to
        s.add(NotificationRecipients(customer_id=tenant.customer_id, emails=["it@customer.example"],
                                     events=["provisioned", "failed", "blocked"]))
        s.commit()
    passwords = {f"p{i}": generate_password() for i in range(5)}
    refs = seeder.users(tenant, list(passwords), aliases=1, passwords=passwords)
    ids = [r.id for r in refs]
    captured: list[str] = []
    done = threading.Event()

    def watch() -> None:
        clients = pipeline_redis(pipeline_env)
        while not done.is_set():
            for c in clients:
                captured.extend(_snapshot(c))
            done.wait(0.2)

    with fresh_stack(pipeline_env, emulator, settings={"NOTIFY_EMAIL_TO": "ops@reseller.example"},
                     replication_lag_s=0.5, mailbox_delay_s={"first": 2, "next": 1}) as stack:
        stack.worker(concurrency=2, loglevel="DEBUG")
        stack.beat()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        publish(refs)
        states = seeder.wait(ids, timeout=60)
        done.set()
        watcher.join(timeout=10)
        logs = stack.logs(tail=None)
    assert states == {kinds.SUCCEEDED: 5}, logs[-4000:]
    assert any("steps.ensure_user" in c for c in captured), "the watcher saw no task message"
    assert not any("celery-task-meta" in c for c in captured), "no task results are stored"
    assert "steps.ensure_user" in logs and "DEBUG" in logs
    pg_engine = create_engine(pipeline_pg_url)
    try:
        with pg_engine.connect() as conn:
            rows = conn.execute(text("SELECT params::text, context::text FROM provisioning_requests")).all()
            steps = conn.execute(text("SELECT coalesce(error_message, '') || coalesce(microsoft_error::text, '') "
                                      "FROM request_steps")).all()
            outbox = conn.execute(text("SELECT payload::text FROM outbox")).all()
    finally:
        pg_engine.dispose()
    database_text = " ".join(str(v) for row in [*rows, *steps, *outbox] for v in row)
    # The reseller's client secret neither: its sign-ins (Graph, Exchange, the consent) are logged too.
    for password in [*passwords.values(), PARTNER_SECRET]:
        assert password not in logs
        assert not any(password in c for c in captured)
        assert password not in database_text
    with seeder.session() as s:
        assert s.scalars(select(UserService.temp_password_enc)
                         .where(UserService.request_id.in_(ids))).all() == [None] * 5
        emails = s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "email",
                                                      OutboxMessage.payload["request_id"].as_string().in_(ids))).all()
        customers = [e for e in emails if e.payload["to"] == "it@customer.example"]
        assert sorted(decrypt(e.secret_enc) for e in customers) == sorted(passwords.values())
        operators = [e for e in emails if e.payload["to"] == "ops@reseller.example"]
        assert len(operators) == 5 and all(e.secret_enc is None for e in operators)
